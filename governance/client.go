package governance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
)

// Client asks a running radgate serve for engine states and changes
// (GET and POST /engines/state on its HTTP intake), as the radgate engines
// state / activate / suspend commands do. The intake authenticates the
// caller; a change needs the operator role.
type Client struct {
	// URL is the intake's base URL (http://127.0.0.1:8080).
	URL string
	// Token is sent as a bearer token when set.
	Token string
	HTTP  *http.Client
}

// RefusedError is a change the server refused; Evaluation is set when an
// activation was measured and did not meet the minimums.
type RefusedError struct {
	Status     int
	Message    string
	Evaluation *Evaluation
}

func (e *RefusedError) Error() string { return e.Message }

// States lists the engine states (facility and route filter when set).
func (c Client) States(ctx context.Context, facility, route string) ([]State, error) {
	q := url.Values{}
	if facility != "" {
		q.Set("facility", facility)
	}
	if route != "" {
		q.Set("route", route)
	}
	var out struct {
		States []State `json:"states"`
	}
	err := c.do(ctx, http.MethodGet, "/engines/state?"+q.Encode(), nil, &out)
	return out.States, err
}

// Change asks for a state change (req.By is set by the server from the
// authenticated caller).
func (c Client) Change(ctx context.Context, req ChangeRequest) (ChangeResult, error) {
	var res ChangeResult
	err := c.do(ctx, http.MethodPost, "/engines/state", req, &res)
	return res, err
}

func (c Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("asking radgate at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading radgate's answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return json.Unmarshal(b, out)
	}
	var e struct {
		Error      string      `json:"error"`
		Evaluation *Evaluation `json:"evaluation"`
		Issue      []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"` // an OperationOutcome (403 from the intake)
	}
	_ = json.Unmarshal(b, &e)
	msg := e.Error
	if msg == "" && len(e.Issue) > 0 {
		msg = e.Issue[0].Diagnostics
	}
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	return &RefusedError{Status: resp.StatusCode, Message: fmt.Sprintf("radgate answered %s: %s", resp.Status, msg), Evaluation: e.Evaluation}
}

// WriteStates writes engine states as a table.
func WriteStates(w io.Writer, states []State) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FACILITY\tROUTE\tENGINE\tVERSION\tMODE\tSINCE\tBY\tWHY")
	for _, s := range states {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Facility, s.Route, s.Engine, s.Version, s.Mode, s.At, s.By, s.Why)
	}
	return tw.Flush()
}

// WriteChange writes what a change did, or why it was refused (err from
// Client.Change), with the evaluation's figures against the minimums.
func WriteChange(w io.Writer, res ChangeResult, err error) error {
	var refused *RefusedError
	ev := res.Evaluation
	if errors.As(err, &refused) && refused.Evaluation != nil {
		ev = refused.Evaluation
	}
	if ev != nil {
		if werr := WriteEvaluation(w, ev); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	s := res.State
	switch {
	case res.Unchanged:
		fmt.Fprintf(w, "engine %s version %s on route %s at %q is %s already\n", s.Engine, s.Version, s.Route, s.Facility, s.Mode)
	default:
		fmt.Fprintf(w, "engine %s version %s on route %s at %q: %s → %s (by %s, revision %d)\n", s.Engine, s.Version, s.Route, s.Facility,
			s.Previous, s.Mode, s.By, s.Revision)
	}
	if res.Audit != "" {
		fmt.Fprintf(w, "audit: %s\n", res.Audit)
	}
	if res.AuditError != "" {
		fmt.Fprintf(w, "audit record NOT written: %s\n", res.AuditError)
	}
	return nil
}
