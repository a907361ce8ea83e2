package service

import (
	"fmt"
	"sync"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/onnx"
	"github.com/radgate/radgate/pipeline"
)

// engineLoader opens engines from the models directory on demand and keeps
// them open: a route reload that names a new engine loads it before the new
// routes are swapped in. An edge's (metadataOnly) opens no ONNX Runtime
// session: its engines are their manifests (pipeline.NewEngineMetadata),
// since it never scores; it needs neither the model files nor ONNX
// Runtime.
type engineLoader struct {
	reg          *inference.Registry
	opts         onnx.EngineOptions // onnx.OptionsFromConfig, with the pacs section's limits on inflating images
	metadataOnly bool

	mu     sync.Mutex
	loaded map[string]radgate.Engine
	opened []*onnx.Engine
}

func newEngineLoader(cfg config.Config) (*engineLoader, error) {
	if cfg.Role == config.RoleEdge {
		reg, err := inference.LoadEngineMetadata(cfg.ModelsDir)
		if err != nil {
			return nil, err
		}
		return &engineLoader{reg: reg, metadataOnly: true, loaded: map[string]radgate.Engine{}}, nil
	}
	reg, err := inference.LoadEngines(cfg.ModelsDir)
	if err != nil {
		return nil, err
	}
	opts, err := onnx.OptionsFromConfig(cfg.Inference)
	if err != nil {
		return nil, err
	}
	opts.Decode = inference.DecodeOptions{MaxInflatedBytes: cfg.PACS.MaxInflatedBytes, MaxInflateRatio: cfg.PACS.MaxInflateRatio}
	return &engineLoader{reg: reg, opts: opts, loaded: map[string]radgate.Engine{}}, nil
}

// IDs lists every engine in the models directory.
func (l *engineLoader) IDs() []string { return l.reg.IDs() }

// load returns the engines with these ids, opening those not open yet.
func (l *engineLoader) load(ids []string) ([]radgate.Engine, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []radgate.Engine
	for _, id := range ids {
		if e, ok := l.loaded[id]; ok {
			out = append(out, e)
			continue
		}
		m, err := l.reg.Get(id)
		if err != nil {
			return nil, err
		}
		if l.metadataOnly {
			re := pipeline.NewEngineMetadata(m)
			l.loaded[id] = re
			out = append(out, re)
			continue
		}
		e, err := onnx.NewEngine(m, l.opts)
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", id, err)
		}
		l.opened = append(l.opened, e)
		re := pipeline.NewInferenceEngine(e, inference.HeatmapOptions{})
		l.loaded[id] = re
		out = append(out, re)
	}
	return out, nil
}

func (l *engineLoader) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.opened {
		_ = e.Close()
	}
	l.opened, l.loaded = nil, map[string]radgate.Engine{}
}
