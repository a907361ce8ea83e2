package broker

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A backup is a directory (mode 0700) of one file per stream (0600): JSON
// lines, one BackupMessage each, in stream order, and ManifestFile naming
// them. It holds order data (patient identifiers): keep it as the
// hospital keeps PHI.
//
// It is read through the plain JetStream API — stream info, then an
// ordered consumer up to the last sequence the info gave (a work-queue
// stream, which allows no second consumer, by message gets: "next by
// subject >" from each sequence, so deleted ones cost nothing) — not the
// snapshot API ($JS.API.STREAM.SNAPSHOT): it gives files that can be
// counted, checked and read without nats-server's store format, and since
// restore republishes, the target may be a different server version or
// cluster size.

// ManifestFile is the backup's table of contents.
const ManifestFile = "manifest.json"

// BackupFormat is the version of the backup's file layout.
const BackupFormat = 1

// Manifest describes a backup.
type Manifest struct {
	Format         int            `json:"format"`
	StateVersion   int            `json:"state_version"`
	RadgateVersion string         `json:"radgate_version"`
	Created        time.Time      `json:"created"`
	Streams        []BackupStream `json:"streams"`
}

// BackupStream is one stream (bucket, object store) in a backup.
type BackupStream struct {
	Name     string                 `json:"name"`
	File     string                 `json:"file"`
	Config   jetstream.StreamConfig `json:"config"`
	Messages uint64                 `json:"messages"`
	FirstSeq uint64                 `json:"first_seq"`
	LastSeq  uint64                 `json:"last_seq"`
	SHA256   string                 `json:"sha256"`
	// Consumers are the stream's durable pull consumers, each with how
	// far it had acknowledged.
	Consumers []BackupConsumer `json:"consumers,omitempty"`
}

// BackupConsumer is a durable consumer in a backup: restore recreates it
// and acknowledges the restored messages up to its ack floor, so a stage
// does not take again what it had finished (a result already delivered).
type BackupConsumer struct {
	Config jetstream.ConsumerConfig `json:"config"`
	// AckFloor is the stream sequence up to which every message was
	// acknowledged (messages acknowledged beyond it, out of order, are
	// delivered again after a restore, as after a crash).
	AckFloor uint64 `json:"ack_floor"`
}

// BackupMessage is one message of a stream file.
type BackupMessage struct {
	Seq     uint64      `json:"seq"`
	Time    time.Time   `json:"time"`
	Subject string      `json:"subject"`
	Header  nats.Header `json:"header,omitempty"`
	Data    []byte      `json:"data"`
}

// Backup writes every radgate stream, bucket and object store (IsRadgate)
// on js to dir, which must not hold a backup already. The state version
// recorded is the one in BucketMeta (StateVersion when none is recorded).
// Messages written while it runs may or may not be in it: stop radgate
// serve for a consistent one.
func Backup(ctx context.Context, js jetstream.JetStream, dir string) (*Manifest, error) {
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a backup (%s): choose an empty directory", dir, ManifestFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	m := &Manifest{Format: BackupFormat, StateVersion: StateVersion, RadgateVersion: RadgateVersion, Created: time.Now().UTC()}
	if kv, err := js.KeyValue(ctx, BucketMeta); err == nil {
		if e, err := kv.Get(ctx, KeyStateVersion); err == nil {
			var rec StateRecord
			if err := json.Unmarshal(e.Value(), &rec); err == nil && rec.StateVersion > 0 {
				m.StateVersion = rec.StateVersion
			}
		}
	}
	var names []string
	lister := js.StreamNames(ctx)
	for name := range lister.Name() {
		if IsRadgate(name) {
			names = append(names, name)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing streams: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		bs, err := backupStream(ctx, js, dir, name)
		if err != nil {
			return nil, fmt.Errorf("backing up stream %s: %w", name, err)
		}
		m.Streams = append(m.Streams, bs)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

func backupStream(ctx context.Context, js jetstream.JetStream, dir, name string) (BackupStream, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return BackupStream{}, err
	}
	info := s.CachedInfo()
	bs := BackupStream{Name: name, File: name + ".jsonl", Config: info.Config}
	cl := s.ListConsumers(ctx)
	for ci := range cl.Info() {
		if ci.Config.Durable != "" && ci.Config.DeliverSubject == "" {
			bs.Consumers = append(bs.Consumers, BackupConsumer{Config: ci.Config, AckFloor: ci.AckFloor.Stream})
		}
	}
	if err := cl.Err(); err != nil {
		return bs, fmt.Errorf("listing consumers: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, bs.File), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return bs, err
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriter(io.MultiWriter(f, h))
	enc := json.NewEncoder(w)
	write := func(m BackupMessage) error {
		if bs.Messages == 0 {
			bs.FirstSeq = m.Seq
		}
		bs.LastSeq = m.Seq
		bs.Messages++
		return enc.Encode(m)
	}
	if info.State.Msgs > 0 {
		read := readByConsumer
		if info.Config.Retention == jetstream.WorkQueuePolicy {
			read = readByGet
		}
		if err := read(ctx, js, s, info.State.LastSeq, write); err != nil {
			return bs, err
		}
	}
	if err := w.Flush(); err != nil {
		return bs, err
	}
	if err := f.Close(); err != nil {
		return bs, err
	}
	bs.SHA256 = hex.EncodeToString(h.Sum(nil))
	return bs, nil
}

// readByConsumer reads a stream up to sequence last with an ordered
// consumer (fast: the server pushes batches).
func readByConsumer(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, last uint64, write func(BackupMessage) error) error {
	c, err := js.OrderedConsumer(ctx, s.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return err
	}
	for {
		batch, err := c.Fetch(512, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > last {
				return nil
			}
			if err := write(BackupMessage{Seq: md.Sequence.Stream, Time: md.Timestamp.UTC(), Subject: m.Subject(),
				Header: m.Headers(), Data: m.Data()}); err != nil {
				return err
			}
			if md.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			return nil // the messages up to last are gone (a limit, a purge)
		}
	}
}

// readByGet reads a stream up to sequence last one get at a time ("next
// by subject >" from the sequence after the last one read): on a
// work-queue stream, which allows no second consumer.
func readByGet(ctx context.Context, _ jetstream.JetStream, s jetstream.Stream, last uint64, write func(BackupMessage) error) error {
	return readFrom(ctx, s, s.CachedInfo().State.FirstSeq, last, write)
}

// readFrom is readByGet from sequence from.
func readFrom(ctx context.Context, s jetstream.Stream, from, last uint64, write func(BackupMessage) error) error {
	for seq := from; seq != 0 && seq <= last; {
		msg, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // nothing at or after seq
		}
		if err != nil {
			return fmt.Errorf("reading sequence %d: %w", seq, err)
		}
		if msg.Sequence > last {
			return nil
		}
		if err := write(BackupMessage{Seq: msg.Sequence, Time: msg.Time.UTC(), Subject: msg.Subject,
			Header: msg.Header, Data: msg.Data}); err != nil {
			return err
		}
		seq = msg.Sequence + 1
	}
	return nil
}

// RestoreOptions are restore's choices.
type RestoreOptions struct {
	// Force replaces streams that hold messages; without it restore
	// refuses them, changing nothing.
	Force bool
	// Replicas is how many copies each stream gets (config nats.replicas);
	// 0 or 1: one.
	Replicas int
	// Logger receives the migration of a backup of an older state version
	// (nil: slog.Default).
	Logger *slog.Logger
}

// ReadManifest reads and checks dir's manifest and the SHA-256 of every
// stream file it names.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("reading the backup's manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Format != BackupFormat {
		return nil, fmt.Errorf("%s: backup format %d, this radgate reads %d", filepath.Join(dir, ManifestFile), m.Format, BackupFormat)
	}
	for _, s := range m.Streams {
		if !IsRadgate(s.Name) || s.File != filepath.Base(s.File) {
			return nil, fmt.Errorf("%s names stream %s, file %q: not a radgate backup", ManifestFile, s.Name, s.File)
		}
		f, err := os.Open(filepath.Join(dir, s.File))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
			return nil, fmt.Errorf("%s: SHA-256 %s, the manifest says %s: the backup is damaged", s.File, got, s.SHA256)
		}
	}
	return &m, nil
}

// Restore recreates every stream in the backup at dir on js, with its
// configuration (o.Replicas copies) and its messages republished in order
// with their subjects and headers (a KV bucket's history per key and an
// object store's chunks come back so). It refuses, changing nothing, a
// backup of a newer state version than StateVersion, a damaged one, and
// (without o.Force) a target stream that holds messages. Sequence numbers
// and publish times are new: restored messages age from the restore (the
// order list's index pointers are mapped to the new sequences:
// seqPointers). Nats-Msg-Id is not republished: the ids radgate gives
// (history entries carry their order's KV revision) would name the old
// sequences and could swallow a new message as a duplicate. Durable pull
// consumers are recreated and acknowledge the restored messages up to
// their ack floor (BackupConsumer). A backup of an older state version is
// then migrated to StateVersion (EnsureStateVersion). Run it with radgate
// serve stopped.
func Restore(ctx context.Context, js jetstream.JetStream, dir string, o RestoreOptions) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if m.StateVersion > StateVersion {
		return nil, fmt.Errorf("the backup is of JetStream state version %d (radgate %s), this radgate knows up to %d: restore it with that radgate or a later one",
			m.StateVersion, m.RadgateVersion, StateVersion)
	}
	var full []string
	for _, s := range m.Streams {
		st, err := js.Stream(ctx, s.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("looking up stream %s: %w", s.Name, err)
		}
		// The target's own state version (written by any radgate start)
		// is replaced by the backup's, not data.
		if n := st.CachedInfo().State.Msgs; n > 0 && s.Name != KVStream(BucketMeta) {
			full = append(full, fmt.Sprintf("%s (%d messages)", s.Name, n))
		}
	}
	if len(full) > 0 && !o.Force {
		return nil, fmt.Errorf("refusing to overwrite streams that hold messages: %s; restore --force replaces them", strings.Join(full, ", "))
	}
	// The streams whose values point at another's sequences come after
	// it, and their pointers are mapped to its new sequences.
	streams := slices.Clone(m.Streams)
	sort.SliceStable(streams, func(i, j int) bool {
		return seqPointers[streams[i].Name] == "" && seqPointers[streams[j].Name] != ""
	})
	newSeq := map[string]map[uint64]uint64{}
	for _, s := range streams {
		seqs, err := restoreStream(ctx, js, dir, s, o, newSeq[seqPointers[s.Name]])
		if err != nil {
			return m, fmt.Errorf("restoring stream %s: %w", s.Name, err)
		}
		newSeq[s.Name] = seqs
		for _, c := range s.Consumers {
			if err := restoreConsumer(ctx, js, s.Name, c, seqs); err != nil {
				return m, fmt.Errorf("restoring consumer %s on stream %s: %w", c.Config.Durable, s.Name, err)
			}
		}
	}
	if m.StateVersion < StateVersion {
		// An older backup is brought to this radgate's layout now, as
		// serve's next start would.
		if _, err := EnsureStateVersion(ctx, js, o.Logger); err != nil {
			return m, fmt.Errorf("migrating the restored state from version %d: %w", m.StateVersion, err)
		}
	}
	return m, nil
}

// restoreConsumer creates c on stream and acknowledges the restored
// messages up to (the new sequence of) its ack floor.
func restoreConsumer(ctx context.Context, js jetstream.JetStream, stream string, c BackupConsumer, seqs map[uint64]uint64) error {
	var floor uint64 // the new sequence of the last restored message at or below the ack floor
	for old, seq := range seqs {
		if old <= c.AckFloor && seq > floor {
			floor = seq
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, c.Config)
	if err != nil {
		return err
	}
	for floor > 0 {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > floor {
				done = true
				_ = msg.Nak() // not acknowledged before: delivered to serve at once
				continue
			}
			if c.Config.AckPolicy != jetstream.AckNonePolicy {
				if err := msg.Ack(); err != nil {
					return err
				}
			}
			done = done || md.Sequence.Stream == floor
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if done || got == 0 {
			break
		}
	}
	if floor == 0 || c.Config.AckPolicy == jetstream.AckNonePolicy {
		return nil
	}
	// Acks are not answered: wait until the consumer has them all.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream >= floor {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("acknowledged up to stream sequence %d, %d expected", info.AckFloor.Stream, floor)
		}
	}
}

// restoreWindow is how many messages restore has in flight at most.
const restoreWindow = 256

// seqPointers names the streams whose message values are a sequence (in
// decimal) of another stream: the order list's state and facility indexes
// point at the time index (pipeline/orderlist.go). Restore renumbers, so
// it maps them.
var seqPointers = map[string]string{
	StreamOrderStates:     StreamOrderIndex,
	StreamOrderFacilities: StreamOrderIndex,
}

// restoreStream recreates s and returns the new sequence of each backed-up
// one; a message's value that is a sequence in pointsTo (not nil) is
// replaced by its new one.
func restoreStream(ctx context.Context, js jetstream.JetStream, dir string, s BackupStream, o RestoreOptions,
	pointsTo map[uint64]uint64) (map[uint64]uint64, error) {
	if err := js.DeleteStream(ctx, s.Name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	cfg := s.Config
	cfg.Replicas = max(o.Replicas, 1)
	cfg.Sealed = false
	for k := range cfg.Metadata {
		if strings.HasPrefix(k, "_nats.") { // the server's own
			delete(cfg.Metadata, k)
		}
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, s.File))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var n uint64
	seqs := map[uint64]uint64{}
	// Published asynchronously, restoreWindow at a time: one connection
	// keeps them in order; each window's acknowledgements give the new
	// sequences.
	type pending struct {
		seq uint64
		f   jetstream.PubAckFuture
	}
	var window []pending
	flush := func() error {
		for _, p := range window {
			select {
			case ack := <-p.f.Ok():
				seqs[p.seq] = ack.Sequence
			case err := <-p.f.Err():
				return fmt.Errorf("publishing backup sequence %d: %w", p.seq, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		window = window[:0]
		return nil
	}
	for {
		var bm BackupMessage
		if err := dec.Decode(&bm); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s message %d: %w", s.File, n+1, err)
		}
		msg := &nats.Msg{Subject: bm.Subject, Header: nats.Header{}, Data: bm.Data}
		for k, v := range bm.Header {
			if k != nats.MsgIdHdr && !strings.HasPrefix(k, "Nats-Expected-") {
				msg.Header[k] = v
			}
		}
		if pointsTo != nil {
			if old, err := strconv.ParseUint(string(bm.Data), 10, 64); err == nil {
				if seq, ok := pointsTo[old]; ok {
					msg.Data = []byte(strconv.FormatUint(seq, 10))
				}
			}
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return nil, fmt.Errorf("publishing backup sequence %d: %w", bm.Seq, err)
		}
		window = append(window, pending{bm.Seq, f})
		if len(window) == restoreWindow {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		n++
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if n != s.Messages {
		return nil, fmt.Errorf("%s holds %d messages, the manifest says %d", s.File, n, s.Messages)
	}
	return seqs, nil
}
