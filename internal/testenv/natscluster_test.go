package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The cluster helper: three real nats-server processes, an R3 stream, its
// leader killed with SIGKILL, a new leader elected, the node restarted and
// current again.
func TestNATSClusterKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-server processes")
	}
	c := StartNATSCluster(t, 3)
	nc, err := nats.Connect(c.ClientURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Node(info.Cluster.Leader)
	if leader == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("cluster info %+v", info.Cluster)
	}
	c.Kill9(leader)
	var newLeader string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := st.Info(ictx)
		icancel()
		if err == nil && info.Cluster.Leader != "" && info.Cluster.Leader != leader.Name {
			newLeader = info.Cluster.Leader
			break
		}
	}
	if newLeader == "" {
		t.Fatal("no new stream leader within 20 s of the kill")
	}
	c.Restart(leader)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := st.Info(ictx)
		icancel()
		if err == nil && len(info.Cluster.Replicas) == 2 && info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not current 20 s after the restart: %+v %v", info, err)
		}
	}
	if _, err := c.MetaLeader(); err != nil {
		t.Fatal(err)
	}
}
