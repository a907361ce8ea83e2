package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/evaluation"
	"github.com/radgate/radgate/governance"
	"github.com/radgate/radgate/inference"
)

// verdictOptions are the flags of `radgate eval --from-verdicts`.
type verdictOptions struct {
	from              bool
	facility          string
	includeOutOfScope bool
	configPath        string
}

const verdictsHelp = `

--from-verdicts --facility F evaluates instead on what radiologists said
at facility F: the labels radgate serve recorded from verdicts (final
DiagnosticReports, ORU^R01, completed read Tasks), one per result (the
latest verdict with a finding), joined to the score each engine gave. No
file is scored and no DIR is given. Results outside an engine's intended
use (scored in shadow, recorded out of scope) are left out unless
--include-out-of-scope. With two engines the paired comparison is on the
orders both scored and a reader labelled. --engine ID@VERSION picks a model
version where the facility has labels of several. The labels are read from
NATS as radgate dlq reads it: nats.url, else the embedded server of the
running radgate serve (--config names serve's radgate.yaml); the
thresholds from the manifests in --models. --out is --plots.`

// addVerdictFlags adds the --from-verdicts flags to the eval command.
func addVerdictFlags(cmd *cobra.Command, o *evalOptions) {
	cmd.Long += verdictsHelp
	f := cmd.Flags()
	f.BoolVar(&o.verdicts.from, "from-verdicts", false, "evaluate on the verdicts recorded at --facility instead of a labelled set")
	f.StringVar(&o.verdicts.facility, "facility", "", "with --from-verdicts: the facility id (or the name its orders gave)")
	f.BoolVar(&o.verdicts.includeOutOfScope, "include-out-of-scope", false, "with --from-verdicts: count results outside the intended use too")
	f.StringVarP(&o.verdicts.configPath, "config", "c", "", "with --from-verdicts: radgate.yaml of the running serve (where NATS is)")
	f.StringVar(&o.plotsDir, "out", "", "directory for ROC and reliability PNGs (same as --plots)")
}

func runEvalVerdicts(ctx context.Context, o evalOptions, stdout, stderr io.Writer) error {
	if o.verdicts.facility == "" {
		return &exitError{code: 2, err: fmt.Errorf("--from-verdicts needs --facility")}
	}
	if o.labels != "" {
		return &exitError{code: 2, err: fmt.Errorf("--from-verdicts takes its labels from the verdicts: drop --labels")}
	}
	q, err := verdictQuery(o)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	js, closeNATS, err := connectJetStream(o.verdicts.configPath, "radgate-eval")
	if err != nil {
		return err
	}
	defer closeNATS()
	topo, err := broker.BindTopology(ctx, js)
	if err != nil {
		return fmt.Errorf("reaching radgate's buckets: %w", err)
	}
	set, err := governance.New(governance.Options{Topology: topo}).FromVerdicts(ctx, q)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	sum, err := set.Summarize()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if o.jsonOut {
		err = sum.WriteJSON(stdout)
	} else {
		err = sum.WriteTable(stdout, set.Title())
	}
	if err != nil {
		return err
	}
	if o.plotsDir != "" {
		written, err := sum.WritePlots(o.plotsDir)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("writing plots: %w", err)}
		}
		fmt.Fprintf(stderr, "radgate: plots written: %s\n", strings.Join(written, ", "))
	}
	return nil
}

// verdictQuery turns the flags into a query, each engine's cut-offs from
// its manifest.
func verdictQuery(o evalOptions) (governance.VerdictQuery, error) {
	q := governance.VerdictQuery{Facility: o.verdicts.facility, IncludeOutOfScope: o.verdicts.includeOutOfScope}
	reg, loadErr := inference.LoadEngines(o.modelsDir)
	if reg == nil {
		return q, loadErr
	}
	ids := o.engines
	if len(ids) == 0 {
		ids = []string{inference.DefaultEngineID}
	}
	for _, spec := range ids {
		id, version, _ := strings.Cut(spec, "@")
		m, err := reg.Get(id)
		if err != nil {
			if loadErr != nil {
				err = fmt.Errorf("%w (%v)", err, loadErr)
			}
			return q, err
		}
		t := m.Thresholds
		q.Engines = append(q.Engines, governance.VerdictEngine{ID: id, Version: version,
			Options: evaluation.Options{TierMid: t.TierMid, TierHigh: t.TierHigh, Cutoffs: []float64{t.Mark}}})
	}
	return q, nil
}
