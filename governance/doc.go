// Package governance decides whether an engine's results reach clinicians.
//
// A route that declares acceptance minimums (routes.example.yaml, key
// acceptance) starts every engine, and every new model version, in shadow
// on each facility: its results are scored, recorded for measurement
// (Measure) and never delivered. Radiologists' verdicts come back through
// the intakes as radgate.Verdict and are stored as labels of the results
// they are about (Labels.Record, a radgate.VerdictRecorder). Evaluate
// measures an engine on a facility's labels (AUC with its DeLong 95 %
// interval, sensitivity and specificity at each tier threshold); Change
// activates an engine only when a recorded evaluation meets the route's
// minimums, and suspends one at an operator's word.
//
// Storage (declared in broker): the engine modes in KV bucket
// radgate_engine_state (one key per facility × route × engine × model
// version, each change a new revision), every result in radgate_scores
// (with the order's accession and study indexes the labels are matched
// by), the labels in radgate_labels (one key per result × verdict source ×
// read: a redelivery is recognised, a second verdict of the same read
// replaces the first and stays in the key's history), and every
// evaluation and state change, with who, when, why and the figures, in
// the append-only stream RADGATE_GOVERNANCE.
package governance
