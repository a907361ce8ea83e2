package dicomweb

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/radgate/radgate"
)

// The happy path against a real archive is in orthanc_test.go. These cases
// cover answers Orthanc does not give: other servers' habits, ambiguity,
// limits.

// qidoServer answers each path from a table (404 for an unknown path) and
// records the queries it saw.
type qidoServer struct {
	mu      sync.Mutex
	answers map[string]string
	status  map[string]int
	queries map[string][]url.Values
}

func newQIDOServer(answers map[string]string) *qidoServer {
	return &qidoServer{answers: answers, status: map[string]int{}, queries: map[string][]url.Values{}}
}

func (s *qidoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/dicom-web")
	s.queries[p] = append(s.queries[p], r.URL.Query())
	if code, ok := s.status[p]; ok {
		w.WriteHeader(code)
		return
	}
	body, ok := s.answers[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/dicom+json")
	_, _ = w.Write([]byte(body))
}

func studyJSON(uid, accession string) string {
	return `{"0020000D": {"vr": "UI", "Value": ["` + uid + `"]}, "00080050": {"vr": "SH", "Value": ["` + accession + `"]}}`
}

func TestFindStudyByAccessionIsExactAndUnambiguous(t *testing.T) {
	const other = "1.2.826.0.1.3680043.8.498.2"
	cases := []struct {
		name    string
		answer  string
		wantErr error
	}{
		{"one exact match among wildcard and case matches",
			`[` + studyJSON(other, "ACC1X") + `,` + studyJSON(tStudy, "ACC1") + `,` + studyJSON(other+"1", "acc1") + `]`, nil},
		{"the same study listed twice", `[` + studyJSON(tStudy, "ACC1") + `,` + studyJSON(tStudy, "ACC1") + `]`, nil},
		{"two studies with the accession number", `[` + studyJSON(tStudy, "ACC1") + `,` + studyJSON(other, "ACC1") + `]`, ErrAmbiguousAccession},
		{"no exact match", `[` + studyJSON(other, "ACC10") + `]`, radgate.ErrStudyNotFound},
		{"empty answer", ``, radgate.ErrStudyNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newQIDOServer(map[string]string{
				"/studies":                       tc.answer,
				"/studies/" + tStudy + "/series": `[{"0020000E": {"vr": "UI", "Value": ["` + tSeries + `"]}, "00080060": {"vr": "CS", "Value": ["DX"]}, "00180015": {"vr": "CS", "Value": ["CHEST"]}}]`,
				"/studies/" + tStudy + "/series/" + tSeries + "/instances": `[{"00080018": {"vr": "UI", "Value": ["` + tSOP + `"]}, "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.1.1"]}}]`,
			})
			c := serve(t, srv.ServeHTTP)
			st, err := c.FindStudy(t.Context(), radgate.StudyQuery{AccessionNumber: " ACC1 "})
			require.Equal(t, "ACC1", srv.queries["/studies"][0].Get("AccessionNumber"))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				requirePermanent(t, err)
				require.Contains(t, err.Error(), `accession number "ACC1"`)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tStudy, st.StudyInstanceUID)
			require.Equal(t, "ACC1", st.AccessionNumber)
		})
	}
}

func TestFindStudyParsesAndSorts(t *testing.T) {
	const (
		s1 = tStudy + ".10"
		s2 = tStudy + ".20"
	)
	srv := newQIDOServer(map[string]string{
		// Lowercase tags, numbers as strings, padding: other servers' habits.
		"/studies": `[{"0020000d": {"vr": "UI", "Value": ["` + tStudy + `"]}, "00080050": {"vr": "SH", "Value": ["ACC1 "]}}]`,
		"/studies/" + tStudy + "/series": `[
			{"0020000E": {"vr": "UI", "Value": ["` + s2 + `"]}, "00080060": {"vr": "CS", "Value": ["DX"]}, "00200011": {"vr": "IS", "Value": [2]}, "00180015": {"vr": "CS", "Value": ["CHEST"]}},
			{"0020000E": {"vr": "UI", "Value": ["` + s1 + `"]}, "00080060": {"vr": "CS", "Value": ["CR"]}, "00200011": {"vr": "IS", "Value": ["1"]}},
			{"0020000E": {"vr": "UI", "Value": ["` + s1 + `.5"]}, "00080060": {"vr": "CS", "Value": ["PR"]}}
		]`,
		// Series 1 has no Body Part Examined at series level: it comes from
		// the instances.
		"/studies/" + tStudy + "/series/" + s1 + "/instances": `[
			{"00080018": {"vr": "UI", "Value": ["` + s1 + `.2"]}, "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.1"]}, "00200013": {"vr": "IS", "Value": [2]}, "00180015": {"vr": "CS", "Value": ["CHEST"]}},
			{"00080018": {"vr": "UI", "Value": ["` + s1 + `.1"]}, "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.1"]}, "00200013": {"vr": "IS", "Value": [1]}, "00180015": {"vr": "CS", "Value": ["CHEST"]}}
		]`,
		"/studies/" + tStudy + "/series/" + s2 + "/instances": `[{"00080018": {"vr": "UI", "Value": ["` + s2 + `.1"]}}]`,
		// A series whose instances are gone is left out.
		"/studies/" + tStudy + "/series/" + s1 + ".5/instances": `[]`,
	})
	c := serve(t, srv.ServeHTTP)
	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: "urn:oid:" + tStudy})
	require.NoError(t, err)
	require.Equal(t, &radgate.Study{
		StudyInstanceUID: tStudy,
		AccessionNumber:  "ACC1",
		Series: []radgate.Series{
			{SeriesInstanceUID: s1, Modality: "CR", BodyPartExamined: "CHEST", Instances: []radgate.Instance{
				{SOPInstanceUID: s1 + ".1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.1"},
				{SOPInstanceUID: s1 + ".2", SOPClassUID: "1.2.840.10008.5.1.4.1.1.1"},
			}},
			{SeriesInstanceUID: s2, Modality: "DX", BodyPartExamined: "CHEST", Instances: []radgate.Instance{{SOPInstanceUID: s2 + ".1"}}},
		},
	}, st)

	require.Equal(t, tStudy, srv.queries["/studies"][0].Get("StudyInstanceUID"))
	require.ElementsMatch(t, []string{"0008103E", "00180015"}, srv.queries["/studies/"+tStudy+"/series"][0]["includefield"])
	// Body Part Examined is asked of the instances only where the series
	// level lacked it.
	require.Equal(t, []string{"00185101", "00540220", "00180015"}, srv.queries["/studies/"+tStudy+"/series/"+s1+"/instances"][0]["includefield"])
	require.Equal(t, []string{"00185101", "00540220"}, srv.queries["/studies/"+tStudy+"/series/"+s2+"/instances"][0]["includefield"])
}

func TestFindStudyLimitsAndAbsence(t *testing.T) {
	instances := `[{"00080018": {"vr": "UI", "Value": ["1.1"]}}, {"00080018": {"vr": "UI", "Value": ["1.2"]}}, {"00080018": {"vr": "UI", "Value": ["1.3"]}}]`
	answers := func() map[string]string {
		return map[string]string{
			"/studies":                       `[` + studyJSON(tStudy, "A") + `]`,
			"/studies/" + tStudy + "/series": `[{"0020000E": {"vr": "UI", "Value": ["` + tSeries + `"]}, "00080060": {"vr": "CS", "Value": ["CT"]}}]`,
			"/studies/" + tStudy + "/series/" + tSeries + "/instances": instances,
		}
	}

	t.Run("too many instances", func(t *testing.T) {
		srv := newQIDOServer(answers())
		c := serve(t, srv.ServeHTTP, func(o *Options) { o.MaxInstancesPerStudy = 2 })
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.ErrorIs(t, err, ErrTooManyInstances)
		requirePermanent(t, err)
		require.Equal(t, "3", srv.queries["/studies/"+tStudy+"/series/"+tSeries+"/instances"][0].Get("limit"))
	})
	t.Run("series level 404 means absent", func(t *testing.T) {
		a := answers()
		delete(a, "/studies/"+tStudy+"/series")
		c := serve(t, newQIDOServer(a).ServeHTTP)
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.ErrorIs(t, err, radgate.ErrStudyNotFound)
		requirePermanent(t, err)
	})
	t.Run("root 404 is a wrong base URL, not an absent study", func(t *testing.T) {
		c := serve(t, newQIDOServer(map[string]string{}).ServeHTTP)
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.NotErrorIs(t, err, radgate.ErrStudyNotFound)
		requirePermanent(t, err)
		require.Contains(t, err.Error(), "404")
	})
	t.Run("204 No Content is no match", func(t *testing.T) {
		srv := newQIDOServer(answers())
		srv.status["/studies"] = http.StatusNoContent
		c := serve(t, srv.ServeHTTP)
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	})
	t.Run("a study without instances is not there yet", func(t *testing.T) {
		a := answers()
		a["/studies/"+tStudy+"/series"] = `[]`
		c := serve(t, newQIDOServer(a).ServeHTTP)
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	})
	t.Run("a malformed UID in an answer", func(t *testing.T) {
		a := answers()
		a["/studies/"+tStudy+"/series/"+tSeries+"/instances"] = `[{"00080018": {"vr": "UI", "Value": ["../../x"]}}]`
		c := serve(t, newQIDOServer(a).ServeHTTP)
		_, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.ErrorIs(t, err, ErrMalformedResponse)
		requirePermanent(t, err)
	})
}

func TestInvalidQueries(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("no request expected, got %s", r.URL)
	})
	for _, q := range []radgate.StudyQuery{
		{},
		{AccessionNumber: "  "},
		{StudyInstanceUID: "1.2.3/../4"},
		{StudyInstanceUID: ".."},
		{StudyInstanceUID: "1.2." + strings.Repeat("9", 70)},
	} {
		_, err := c.FindStudy(t.Context(), q)
		require.ErrorIs(t, err, ErrInvalidQuery, "%+v", q)
		requirePermanent(t, err)
	}
	_, err := c.RetrieveInstance(t.Context(), tStudy, tSeries, "1.2.3?x=1")
	require.ErrorIs(t, err, ErrInvalidQuery)
	_, err = c.Store(t.Context())
	require.ErrorIs(t, err, ErrInvalidQuery)
	_, err = c.Store(t.Context(), nil)
	require.ErrorIs(t, err, ErrInvalidQuery)
}

// Views: a server that returns View Code Sequence in QIDO-RS needs no
// metadata request; one that leaves it out (Orthanc 1.10) gets one series
// metadata request for a projection series, none for a CT series; a
// metadata answer that fails fails FindStudy.
func TestFindStudyViews(t *testing.T) {
	const (
		sop2  = tSOP + ".2"
		sop3  = tSOP + ".3"
		pa    = `{"00080018": {"vr": "UI", "Value": ["` + tSOP + `"]}, "00200013": {"vr": "IS", "Value": [1]}, "00185101": {"vr": "CS", "Value": ["PA "]}}`
		coded = `{"00080018": {"vr": "UI", "Value": ["` + sop2 + `"]}, "00200013": {"vr": "IS", "Value": [2]}, "00540220": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["R-10206"]}, "00080102": {"vr": "SH", "Value": ["SRT"]}, "00080104": {"vr": "LO", "Value": ["antero-posterior"]}}]}}`
		bare  = `{"00080018": {"vr": "UI", "Value": ["` + sop3 + `"]}, "00200013": {"vr": "IS", "Value": [3]}}`
		meta3 = `[{"00080018": {"vr": "UI", "Value": ["` + sop3 + `"]}, "00540220": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["272479001"]}, "00080102": {"vr": "SH", "Value": ["SCT"]}, "00080104": {"vr": "LO", "Value": ["antero-posterior"]}}]}}, {"00080018": {"vr": "UI", "Value": ["` + tSOP + `"]}, "00540220": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["1"]}}]}}]`
	)
	seriesPath := "/studies/" + tStudy + "/series"
	instPath := seriesPath + "/" + tSeries + "/instances"
	metaPath := seriesPath + "/" + tSeries + "/metadata"
	answers := func(modality, instances string) map[string]string {
		return map[string]string{
			"/studies": `[` + studyJSON(tStudy, "ACC1") + `]`,
			seriesPath: `[{"0020000E": {"vr": "UI", "Value": ["` + tSeries + `"]}, "00080060": {"vr": "CS", "Value": ["` + modality + `"]}, "00180015": {"vr": "CS", "Value": ["CHEST"]}}]`,
			instPath:   instances,
			metaPath:   meta3,
		}
	}
	find := func(t *testing.T, srv *qidoServer) *radgate.Study {
		t.Helper()
		st, err := serve(t, srv.ServeHTTP).FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.NoError(t, err)
		q := srv.queries[instPath][0]["includefield"]
		require.Contains(t, q, "00185101")
		require.Contains(t, q, "00540220")
		return st
	}
	paInst := radgate.Instance{SOPInstanceUID: tSOP, ViewPosition: "PA"}
	srtAP := radgate.Instance{SOPInstanceUID: sop2, ViewCode: &radgate.Coding{System: "SRT", Code: "R-10206", Display: "antero-posterior"}}

	t.Run("QIDO-RS answers both", func(t *testing.T) {
		srv := newQIDOServer(answers("CR", `[`+pa+`,`+coded+`]`))
		st := find(t, srv)
		require.Equal(t, []radgate.Instance{paInst, srtAP}, st.Series[0].Instances)
		require.Empty(t, srv.queries[metaPath], "no metadata request when QIDO-RS answered")
	})
	t.Run("sequence left out: metadata, once", func(t *testing.T) {
		srv := newQIDOServer(answers("DX", `[`+bare+`,`+pa+`,`+coded+`]`))
		st := find(t, srv)
		require.Equal(t, []radgate.Instance{paInst, srtAP, {SOPInstanceUID: sop3,
			ViewCode: &radgate.Coding{System: "http://snomed.info/sct", Code: "272479001", Display: "antero-posterior"}}},
			st.Series[0].Instances, "View Position wins over a metadata code")
		require.Len(t, srv.queries[metaPath], 1)
	})
	t.Run("a CT series costs no metadata request", func(t *testing.T) {
		srv := newQIDOServer(answers("CT", `[`+bare+`]`))
		st := find(t, srv)
		require.Equal(t, []radgate.Instance{{SOPInstanceUID: sop3}}, st.Series[0].Instances)
		require.Empty(t, srv.queries[metaPath])
	})
	t.Run("metadata failing fails FindStudy", func(t *testing.T) {
		srv := newQIDOServer(answers("CR", `[`+bare+`]`))
		srv.status[metaPath] = http.StatusServiceUnavailable
		_, err := serve(t, srv.ServeHTTP).FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
		require.True(t, radgate.IsTransient(err), "%v", err)
		require.Contains(t, err.Error(), "/metadata")
	})
	t.Run("metadata 404: the series went away, views as QIDO-RS said", func(t *testing.T) {
		a := answers("CR", `[`+bare+`]`)
		delete(a, metaPath)
		srv := newQIDOServer(a)
		st := find(t, srv)
		require.Equal(t, []radgate.Instance{{SOPInstanceUID: sop3}}, st.Series[0].Instances)
		require.Len(t, srv.queries[metaPath], 1)
	})
}

// With a Study Instance UID, a server that answers a study's instances at
// once is asked one request: the series are built from the instances'
// series attributes. The tests above get 404 for that request, and with it
// the search in steps.
func TestFindStudyInOneRequest(t *testing.T) {
	const (
		s1 = tStudy + ".10"
		s2 = tStudy + ".20"
	)
	inst := func(series, sop, modality string, seriesNo, instNo int, extra string) string {
		return `{"0020000D": {"vr": "UI", "Value": ["` + tStudy + `"]}, "0020000E": {"vr": "UI", "Value": ["` + series + `"]},` +
			` "00080018": {"vr": "UI", "Value": ["` + sop + `"]}, "00080060": {"vr": "CS", "Value": ["` + modality + `"]},` +
			` "00200011": {"vr": "IS", "Value": [` + strconv.Itoa(seriesNo) + `]}, "00200013": {"vr": "IS", "Value": [` + strconv.Itoa(instNo) + `]}` + extra + `}`
	}
	srv := newQIDOServer(map[string]string{
		"/studies/" + tStudy + "/instances": `[` +
			inst(s2, s2+".1", "DX", 2, 1, `, "00185101": {"vr": "CS", "Value": ["AP"]}, "00080080": {"vr": "LO", "Value": ["Saitama Kids"]}`) + `,` +
			inst(s1, s1+".2", "CR", 1, 2, `, "00185101": {"vr": "CS", "Value": ["LL"]}, "00180015": {"vr": "CS", "Value": ["CHEST"]}, "00080050": {"vr": "SH", "Value": ["ACC1"]}`) + `,` +
			inst(s1, s1+".1", "CR", 1, 1, `, "00185101": {"vr": "CS", "Value": ["PA"]}`) + `,` +
			// Another study's answer (a server matching without regard to case) is dropped.
			`{"0020000D": {"vr": "UI", "Value": ["` + tStudy + `9"]}, "0020000E": {"vr": "UI", "Value": ["9.9"]}, "00080018": {"vr": "UI", "Value": ["9.9.9"]}}` +
			`]`,
	})
	c := serve(t, srv.ServeHTTP)
	st, err := c.FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
	require.NoError(t, err)
	require.Equal(t, &radgate.Study{
		StudyInstanceUID: tStudy, AccessionNumber: "ACC1", InstitutionName: "Saitama Kids",
		Series: []radgate.Series{
			{SeriesInstanceUID: s1, Modality: "CR", BodyPartExamined: "CHEST", Instances: []radgate.Instance{
				{SOPInstanceUID: s1 + ".1", ViewPosition: "PA"}, {SOPInstanceUID: s1 + ".2", ViewPosition: "LL"}}},
			{SeriesInstanceUID: s2, Modality: "DX", Instances: []radgate.Instance{{SOPInstanceUID: s2 + ".1", ViewPosition: "AP"}}},
		},
	}, st)
	require.Len(t, srv.queries, 1, "one request")
	q := srv.queries["/studies/"+tStudy+"/instances"][0]
	require.Equal(t, []string{"00080080", "0008103E", "00180015", "00185101", "00540220"}, q["includefield"])
	require.Equal(t, strconv.Itoa(DefaultMaxInstancesPerStudy+1), q.Get("limit"))

	// An empty answer: the study is not there, still in one request.
	empty := newQIDOServer(map[string]string{"/studies/" + tStudy + "/instances": `[]`})
	_, err = serve(t, empty.ServeHTTP).FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
	require.ErrorIs(t, err, radgate.ErrStudyNotFound)
	require.Len(t, empty.queries, 1)

	// A server that refuses the query (400): the search in steps.
	steps := newQIDOServer(map[string]string{
		"/studies":                       `[` + studyJSON(tStudy, "ACC1") + `]`,
		"/studies/" + tStudy + "/series": `[{"0020000E": {"vr": "UI", "Value": ["` + s1 + `"]}, "00080060": {"vr": "CS", "Value": ["CR"]}}]`,
		"/studies/" + tStudy + "/series/" + s1 + "/instances": `[{"00080018": {"vr": "UI", "Value": ["` + s1 + `.1"]}, "00185101": {"vr": "CS", "Value": ["PA"]}}]`,
	})
	steps.status["/studies/"+tStudy+"/instances"] = http.StatusBadRequest
	st, err = serve(t, steps.ServeHTTP).FindStudy(t.Context(), radgate.StudyQuery{StudyInstanceUID: tStudy})
	require.NoError(t, err)
	require.Equal(t, s1+".1", st.Series[0].Instances[0].SOPInstanceUID)
	require.Len(t, steps.queries, 4)
}
