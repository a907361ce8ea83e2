package radgate

import (
	"fmt"
	"time"
)

// OrderEventKind names what made an order change state: the label of a
// transition in Transitions and of an entry in the order's history.
type OrderEventKind string

// The facts that move an order.
const (
	EvAccepted     OrderEventKind = "accepted"      // an intake event created the order
	EvStudyMissing OrderEventKind = "study-missing" // the PACS does not have the study (yet)
	EvStudyFound   OrderEventKind = "study-found"   // the study is there; its count is watched
	EvStudyChanged OrderEventKind = "study-changed" // instances were added after a result
	EvStudyStable  OrderEventKind = "study-stable"  // count unchanged for orders.stable_after, or announced complete
	EvNoRoute      OrderEventKind = "no-route"      // no route matches, or nothing an engine may score
	EvWaitExpired  OrderEventKind = "wait-expired"  // the wait window ended without images
	EvScored       OrderEventKind = "scored"        // every engine's result is ready
	EvDelivered    OrderEventKind = "delivered"     // every destination has every result
	EvFailed       OrderEventKind = "failed"        // scoring or a destination failed for good
	EvCancelled    OrderEventKind = "cancelled"     // the source cancelled the order
	EvRetracted    OrderEventKind = "retracted"     // every delivered result is withdrawn
	EvReplayed     OrderEventKind = "replayed"      // radgate dlq replay re-opened it
	EvSuperseded   OrderEventKind = "superseded"    // an amended result replaced this revision
	EvProgress     OrderEventKind = "progress"      // an engine or destination moved; the order did not
)

// Transition is one allowed change of an order's state.
type Transition struct {
	From, To OrderState
	On       OrderEventKind
}

// Transitions is the order state machine: every change of an order's state
// is one of these rows (the store refuses and counts any other as a bug).
// It is written out in ARCHITECTURE.md; lifecycle_test.go checks both agree.
// A study that arrives before its order (image-first) takes the same path:
// the order is created received by the ImagingStudy (or, later, a DIMSE
// store) and goes straight to stabilising.
var Transitions = []Transition{
	{"", StateReceived, EvAccepted},
	{StateReceived, StateWaiting, EvStudyMissing},
	{StateReceived, StateStabilising, EvStudyFound},
	{StateReceived, StateRouted, EvStudyStable},
	{StateReceived, StateRejected, EvNoRoute},
	{StateReceived, StateCancelled, EvCancelled},
	{StateReceived, StateScored, EvNoRoute}, // the "no route" answer is on its way
	{StateReceived, StateFailed, EvFailed},  // the PACS refused the query
	{StateWaiting, StateStabilising, EvStudyFound},
	{StateWaiting, StateRouted, EvStudyStable},
	{StateWaiting, StateRejected, EvNoRoute},
	{StateWaiting, StateFailed, EvWaitExpired},
	{StateWaiting, StateCancelled, EvCancelled},
	{StateWaiting, StateScored, EvWaitExpired}, // the "not found" answer is on its way
	{StateStabilising, StateRouted, EvStudyStable},
	{StateStabilising, StateRejected, EvNoRoute},
	{StateStabilising, StateWaiting, EvStudyMissing}, // the study was deleted from the PACS
	{StateStabilising, StateCancelled, EvCancelled},
	{StateStabilising, StateScored, EvNoRoute},
	{StateRouted, StateScored, EvScored},
	{StateRouted, StateFailed, EvFailed},
	{StateRouted, StateCancelled, EvCancelled},
	{StateRouted, StateRetracting, EvCancelled}, // one engine's result was delivered already
	// The delivery was recorded before the result's "scored" record.
	{StateRouted, StateDelivered, EvDelivered},
	{StateRouted, StateRejected, EvDelivered},
	{StateScored, StateDelivered, EvDelivered},
	{StateScored, StateRejected, EvDelivered}, // the answer delivered was "not applicable"
	{StateScored, StateFailed, EvFailed},
	{StateScored, StateCancelled, EvCancelled},
	{StateScored, StateRetracting, EvCancelled},
	{StateDelivered, StateStabilising, EvStudyChanged},
	{StateDelivered, StateRetracting, EvCancelled},
	{StateRejected, StateStabilising, EvStudyChanged},
	{StateRejected, StateReceived, EvReplayed},
	{StateRejected, StateCancelled, EvCancelled},
	{StateRejected, StateRetracting, EvCancelled}, // the "not applicable" answer was delivered
	{StateFailed, StateStabilising, EvStudyFound}, // the images came after the window
	{StateFailed, StateReceived, EvReplayed},
	{StateFailed, StateScored, EvReplayed}, // a replayed delivery: the result exists, it goes out again
	{StateFailed, StateCancelled, EvCancelled},
	{StateFailed, StateRetracting, EvCancelled},
	{StateRetracting, StateCancelled, EvRetracted},
	// A delivery under way when the order was cancelled finished after:
	// what it wrote is retracted too.
	{StateCancelled, StateRetracting, EvDelivered},
}

// CanTransition reports whether an order may go from one state to another.
// Staying in a state is always allowed.
func CanTransition(from, to OrderState) bool {
	if from == to {
		return true
	}
	for _, t := range Transitions {
		if t.From == from && t.To == to {
			return true
		}
	}
	return false
}

// TransitionEvent is the event of the row from → to ("" when none).
func TransitionEvent(from, to OrderState) OrderEventKind {
	for _, t := range Transitions {
		if t.From == from && t.To == to {
			return t.On
		}
	}
	return ""
}

// HistoryEntry is one line of an order's append-only history (the
// HISTORY stream): the order, or one engine's result at one destination,
// moved from one state to another, and why.
type HistoryEntry struct {
	At    time.Time      `json:"at"`
	Order string         `json:"order"`
	Event OrderEventKind `json:"event"`
	From  OrderState     `json:"from,omitempty"`
	To    OrderState     `json:"to"`
	// Engine and Destination are set for an engine's or a destination's
	// progress; both empty for the order itself.
	Engine      string `json:"engine,omitempty"`
	Destination string `json:"destination,omitempty"`
	// Revision is the engine's result revision the entry is about.
	Revision int `json:"revision,omitempty"`
	// Instances is the study's instance count when the entry is about the
	// study (found, changed, stable).
	Instances int    `json:"instances,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// String renders an entry as one timeline line.
func (h HistoryEntry) String() string {
	who := "order"
	if h.Engine != "" {
		who = "engine " + h.Engine
		if h.Destination != "" {
			who += " → " + h.Destination
		}
	}
	s := fmt.Sprintf("%s %s %s: %s → %s", h.At.UTC().Format(time.RFC3339), who, h.Event, h.From, h.To)
	if h.Revision > 1 {
		s += fmt.Sprintf(" (revision %d)", h.Revision)
	}
	if h.Reason != "" {
		s += " — " + h.Reason
	}
	return s
}
