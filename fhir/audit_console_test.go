package fhir

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConsoleAuditEvent(t *testing.T) {
	at := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	b, err := ConsoleAuditEvent(ConsoleAction{Subject: "alice", Roles: []string{"operator", "viewer"}, Kind: "dlq-replay",
		Entities: []string{"dlq/7", "order/abc"}, Outcome: "partial", Detail: "1 of 2 replayed", At: at})
	require.NoError(t, err)
	var ev struct {
		ResourceType string
		Type         struct{ Code string }
		Subtype      []struct{ System, Code string }
		Action       string
		Recorded     string
		Outcome      string
		OutcomeDesc  string
		Agent        []struct {
			Name      string
			Requestor bool
			Role      []struct{ Text string }
		}
		Entity []struct {
			What struct {
				Identifier struct{ System, Value string }
			}
		}
	}
	require.NoError(t, json.Unmarshal(b, &ev))
	require.Equal(t, "AuditEvent", ev.ResourceType)
	require.Equal(t, "110100", ev.Type.Code)
	require.Equal(t, SystemConsoleAction, ev.Subtype[0].System)
	require.Equal(t, "dlq-replay", ev.Subtype[0].Code)
	require.Equal(t, "E", ev.Action)
	require.Equal(t, "4", ev.Outcome, "partial")
	require.Equal(t, "2026-12-03T15:00:00Z", ev.Recorded)
	require.Equal(t, "alice", ev.Agent[0].Name)
	require.True(t, ev.Agent[0].Requestor)
	require.Len(t, ev.Agent[0].Role, 2)
	require.Len(t, ev.Entity, 2)
	require.Equal(t, "urn:radgate:dlq", ev.Entity[0].What.Identifier.System)
	require.Equal(t, "7", ev.Entity[0].What.Identifier.Value)
	require.Equal(t, "urn:radgate:order", ev.Entity[1].What.Identifier.System)
	require.Equal(t, "dlq-replay by alice: dlq/7, order/abc — 1 of 2 replayed", ev.OutcomeDesc)

	b, err = ConsoleAuditEvent(ConsoleAction{Subject: "carol", Kind: "phi-view", Entities: []string{"order/abc"}, Outcome: "done", At: at})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &ev))
	require.Equal(t, "110110", ev.Type.Code)
	require.Equal(t, "R", ev.Action)
	require.Equal(t, "0", ev.Outcome)

	_, err = ConsoleAuditEvent(ConsoleAction{Subject: "alice", Kind: "dlq-replay"})
	require.ErrorContains(t, err, "at least one entity")
	_, err = ConsoleAuditEvent(ConsoleAction{Subject: "alice", Kind: "dlq-replay", Entities: []string{"7"}})
	require.ErrorContains(t, err, `entity "7": want <kind>/<id>`)
}
