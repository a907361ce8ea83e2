package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/demo"
)

// order is one bench order: what it asks for, then how it ended. It holds
// no image.
type order struct {
	ID    string
	Meta  inference.Meta
	Birth time.Time
	Chest bool
	Stat  bool

	posted atomic.Bool
	// Set once the order is terminal.
	State      radgate.OrderState
	Reason     string
	ReceivedAt time.Time
	UpdatedAt  time.Time
	Marked     bool // the default engine marked a region (p ≥ 0.5)
}

// newOrder is the order for one clone.
func newOrder(c clone, s study) (*order, error) {
	key, err := radgate.OrderKey(radgate.OrderEvent{
		Accession:        &radgate.Identifier{System: demo.AccessionSystem, Value: c.Meta.AccessionNumber},
		StudyInstanceUID: c.Meta.StudyInstanceUID})
	if err != nil {
		return nil, err
	}
	return &order{ID: radgate.OrderID(key), Meta: c.Meta, Birth: c.BirthDate, Chest: s.Chest, Stat: s.Stat}, nil
}

// latency is accept → terminal, as radgate's order store records them.
func (o *order) latency() time.Duration { return o.UpdatedAt.Sub(o.ReceivedAt) }

// bundle is the order as an EHR sends it: a transaction of the Patient
// (with the birth date the images carry), the ServiceRequest (stat or
// routine; a chest X-ray, or what the non-chest study is) and the
// ImagingStudy, complete.
func (o *order) bundle() ([]byte, error) {
	ref := func(kind string) string {
		h := sha256.Sum256([]byte(kind + "|" + o.Meta.AccessionNumber))
		x := fmt.Sprintf("%x", h[:16])
		return "urn:uuid:" + x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
	}
	patientURL, srURL := ref("patient"), ref("order")
	patient := map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": "http://hospital.example.org/mrn", "value": "MRN-" + o.Meta.AccessionNumber}},
		"name":       []any{map[string]any{"text": "Bench Patient"}},
		"birthDate":  o.Birth.Format("2006-01-02")}
	subject := map[string]any{"reference": patientURL}
	sr := demo.ServiceRequest(&o.Meta, subject)
	if o.Stat {
		sr["priority"] = "stat"
	}
	if !o.Chest {
		sr["code"] = map[string]any{"text": "XR " + strings.ToLower(o.Meta.BodyPartExamined)}
	}
	return json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": patientURL, "resource": patient, "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"fullUrl": srURL, "resource": sr, "request": map[string]any{"method": "POST", "url": "ServiceRequest"}},
		map[string]any{"resource": demo.ImagingStudy(&o.Meta, subject, map[string]any{"reference": srURL}),
			"request": map[string]any{"method": "POST", "url": "ImagingStudy"}},
	}})
}

// client talks to radgate's intake as the bench's EHR.
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return &client{base: base, http: &http.Client{Transport: t, Timeout: time.Minute}}
}

// maxBackoff bounds how long one order waits out radgate's 429 and 503
// answers in all.
const maxBackoff = 10 * time.Minute

// post files one order; radgate's 429 and 503 are waited out (Retry-After,
// else 1 s) and the order sent again, for up to maxBackoff.
func (c *client) post(ctx context.Context, o *order) error {
	body, err := o.bundle()
	if err != nil {
		return err
	}
	waited := time.Duration(0)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/fhir", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("posting order %s: %w", o.ID, err)
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			o.posted.Store(true)
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && waited < maxBackoff:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			waited += wait
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return fmt.Errorf("posting order %s: HTTP %d: %s", o.ID, resp.StatusCode, answer)
		}
	}
}

// postAll files the orders: spaced by interval, or, with interval 0, as
// fast as radgate takes them from workers concurrent posters.
func (c *client) postAll(ctx context.Context, orders []*order, workers int, interval time.Duration) error {
	if interval > 0 {
		next := time.Now()
		for _, o := range orders {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
			if err := c.post(ctx, o); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		once sync.Once
		ferr error
		next atomic.Int64
	)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(orders) || ctx.Err() != nil {
					return
				}
				if err := c.post(ctx, orders[i]); err != nil {
					once.Do(func() { ferr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

// status reads GET /orders/{id} (demo.Env.OrderStatus, on this client's
// connections).
func (c *client) status(ctx context.Context, id string) (radgate.OrderStatus, error) {
	return (&demo.Env{RadgateURL: c.base, HTTP: c.http}).OrderStatus(ctx, id)
}

// maxMisses is how many orders still in progress one polling round looks
// at before it waits for the next round.
const maxMisses = 8

// waitAll polls until every order is terminal, recording how each ended.
// Orders finish roughly in the order they were posted, so each round walks
// the unfinished ones in that order (skipping those not posted yet) and
// stops after maxMisses still in progress: each order is read about once
// after it finished, and a round costs radgate a few reads, whatever the
// number of orders. Latencies come from radgate's own timestamps, so the
// polling period does not enter them. progress, when set, is called after
// each round with the number finished.
func (c *client) waitAll(ctx context.Context, orders []*order, every, timeout time.Duration, progress func(done int)) error {
	pending := append([]*order(nil), orders...)
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 {
		misses := 0
		keep := pending[:0]
		for i, o := range pending {
			if misses >= maxMisses || !o.posted.Load() {
				keep = append(keep, pending[i:]...)
				break
			}
			st, err := c.status(ctx, o.ID)
			if err != nil || !st.State.Terminal() {
				misses++
				keep = append(keep, o)
				continue
			}
			o.record(st)
		}
		pending = keep
		if progress != nil {
			progress(len(orders) - len(pending))
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d orders not finished after %s (the first: %s)", len(pending), len(orders), timeout, pending[0].ID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}

// record keeps what the bench reports of a terminal order.
func (o *order) record(st radgate.OrderStatus) {
	o.State, o.Reason, o.ReceivedAt, o.UpdatedAt = st.State, st.Reason, st.ReceivedAt, st.UpdatedAt
	for _, e := range st.Engines {
		if e.Probability != nil && *e.Probability >= 0.5 {
			o.Marked = true
		}
	}
}
