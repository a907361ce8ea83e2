package fhirhttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// Every request body byte the client sends is counted once, whatever the
// method; requests without a body count nothing. Not parallel: SentBytes is
// the process's.
func TestClientCountsSentBodyBytes(t *testing.T) {
	var received int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received += len(b)
		w.Header().Set("Content-Type", "application/fhir+json")
		switch r.Method {
		case http.MethodPost:
			w.Header().Set("Location", srvBase(r)+"/Observation/1/_history/1")
			w.WriteHeader(http.StatusCreated)
		case http.MethodPut:
			w.Header().Set("Location", srvBase(r)+"/Observation/1/_history/2")
		}
		_, _ = w.Write([]byte(`{"resourceType":"Observation","id":"1"}`))
	}))
	defer srv.Close()
	c, err := NewClient(ClientOptions{BaseURL: srv.URL + "/fhir"})
	require.NoError(t, err)

	before := testutil.ToFloat64(SentBytes)
	created := `{"resourceType":"Observation","status":"final"}`
	updated := `{"resourceType":"Observation","id":"1","status":"amended","note":[{"text":"` + strings.Repeat("x", 5000) + `"}]}`
	_, err = c.Create(t.Context(), []byte(created), "")
	require.NoError(t, err)
	_, err = c.Update(t.Context(), []byte(updated))
	require.NoError(t, err)
	_, err = c.Read(t.Context(), "Observation/1")
	require.NoError(t, err)

	require.Equal(t, len(created)+len(updated), received)
	require.Equal(t, float64(len(created)+len(updated)), testutil.ToFloat64(SentBytes)-before, "bytes counted = bytes the server read")
}

func srvBase(r *http.Request) string { return "http://" + r.Host + "/fhir" }
