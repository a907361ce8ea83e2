package main

import (
	"io"

	"github.com/schollz/progressbar/v3"
)

// progress is the bar drawn on stderr while scoring, when stderr is a
// terminal; otherwise (and as a nil *progress) it draws nothing.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(stderr io.Writer, total int) *progress {
	if !isTerminal(stderr) {
		return nil
	}
	return newProgressBar(stderr, total)
}

func newProgressBar(w io.Writer, total int) *progress {
	return &progress{bar: progressbar.NewOptions(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("scoring"), progressbar.OptionSetWidth(30), progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(), progressbar.OptionSetRenderBlankState(true))}
}

func (p *progress) add(n int) {
	if p != nil {
		_ = p.bar.Add(n)
	}
}

func (p *progress) finish() {
	if p != nil {
		_ = p.bar.Finish()
	}
}
