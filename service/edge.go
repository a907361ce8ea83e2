package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/radgate/radgate"
	"github.com/radgate/radgate/adapters/dimse"
	"github.com/radgate/radgate/broker"
	"github.com/radgate/radgate/pipeline"
)

// edgeImages is a hub's view of the edges' image stores (role hub): each
// facility's opened once, through its edge's JetStream domain, and read
// there (a direct get over the leaf link: no hub stream holds an image).
type edgeImages struct {
	nc *nats.Conn
	mu sync.Mutex
	by map[string]*dimse.Archive
}

func newEdgeImages(nc *nats.Conn) *edgeImages {
	return &edgeImages{nc: nc, by: map[string]*dimse.Archive{}}
}

// source implements pipeline.Options.EdgeImages.
func (e *edgeImages) source(ctx context.Context, facility string) (radgate.StudySource, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a, ok := e.by[facility]; ok {
		return a, nil
	}
	js, err := jetstream.NewWithDomain(e.nc, broker.EdgeDomain(facility))
	if err != nil {
		return nil, err
	}
	a, err := dimse.OpenArchive(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("the image store of facility %s's edge (domain %s): %w", facility, broker.EdgeDomain(facility), err)
	}
	e.by[facility] = a
	return a, nil
}

// stageImages implements pipeline.Options.StageImages on an edge: each of
// the job's images not in the edge's image store already (pushed to its
// Storage SCP, or staged before) is copied there from the site's PACS
// (from), where the hub reads it.
func stageImages(images *dimse.Archive, from radgate.StudySource) func(context.Context, pipeline.Job) error {
	return func(ctx context.Context, job pipeline.Job) error {
		for _, in := range job.Instances {
			if _, err := images.RetrieveInstance(ctx, job.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID); err == nil {
				continue
			}
			b, err := from.RetrieveInstance(ctx, job.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
			if err != nil {
				return fmt.Errorf("retrieving image %s from the PACS: %w", in.SOPInstanceUID, err)
			}
			rec := dimse.InstanceRecord{StudyInstanceUID: job.StudyInstanceUID, SeriesInstanceUID: in.SeriesInstanceUID,
				SOPInstanceUID: in.SOPInstanceUID, Modality: in.Modality, BodyPartExamined: in.BodyPart, ViewPosition: in.View,
				Retrieved: true, Bytes: int64(len(b))}
			if err := images.Put(ctx, rec, b); err != nil {
				return err
			}
		}
		return nil
	}
}

// edgeLinkGrace is how long an edge's start waits for its link to the hub
// before declaring its results source (a healthy link is up within
// milliseconds of the embedded server's start).
const edgeLinkGrace = 3 * time.Second

// declareEdgeSource declares the edge's source of the hub's results of
// facility once its leaf link is up, waiting up to grace for it. A source
// declared while the link is down asks the hub for its consumer anyway;
// nats-server then waits out its 30 s create timeout and a 10 s backoff,
// and does not retry sooner when the link comes back (BENCHMARKS.md "The
// hub/edge link's stall"): the first results would wait ≈ 40 s after the
// link returned. So with the link still down after grace it declares
// nothing and reports pending: awaitLinkThenDeclare does it later. A
// source declared by an earlier start is kept by the stream meanwhile
// (nothing is lost either way: the source starts at the hub's first
// result).
func declareEdgeSource(ctx context.Context, js jetstream.JetStream, emb *broker.EmbeddedServer, facility string,
	grace time.Duration, log *slog.Logger) (pending bool, err error) {
	if emb.WaitLeaf(grace) != nil {
		log.Warn("edge: the link to the hub is down; orders are taken and kept, and the results source is declared when the link is up",
			"facility", facility)
		return true, nil
	}
	return false, broker.EnsureEdgeSource(ctx, js, facility)
}

// awaitLinkThenDeclare waits for the edge's link to the hub and declares
// its results source, retrying a failed declaration, until ctx ends.
func awaitLinkThenDeclare(ctx context.Context, js jetstream.JetStream, emb *broker.EmbeddedServer, facility string, log *slog.Logger) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if emb.Linked() {
			err := broker.EnsureEdgeSource(ctx, js, facility)
			if err == nil {
				log.Info("edge: the link to the hub is up; results source declared", "facility", facility)
				return
			}
			log.Warn("edge: declaring the results source", "facility", facility, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
