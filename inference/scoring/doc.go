// Package scoring is the per-file work of the radgate command line: which
// files of the arguments to score (Inputs), decoding and scoring them in
// batches with one engine into the lines `radgate score` prints (Files,
// Printer), heatmaps only where asked for, and scoring a labelled set with
// several engines for `radgate eval` (Labelled). It owns no flags and no
// exit codes: cmd/radgate does.
package scoring
