// Package billing counts analyses: one per scored result, per facility ×
// engine × day, in the JetStream KV bucket radgate_usage, with a marker per
// result id so a redelivered or replayed result is counted once. radgate
// usage and the per-case fee read it.
package billing
