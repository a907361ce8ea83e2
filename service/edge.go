package service

import (
	"context"
	"fmt"
	"sync"

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
