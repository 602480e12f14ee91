package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
)

// TestZombieFenced: instance A stalls in the middle of a transaction and is
// removed from the group without knowing it (its heartbeats are 7.5s
// apart); instance B takes every partition and processes them. When A
// wakes up and tries to commit, the broker refuses its offsets (KIP-447
// generation check) and A aborts (on a loaded machine A may rejoin and abort
// again, so at least once): the output holds every input once.
func TestZombieFenced(t *testing.T) {
	const n = 2000
	brokers := kafkatest.Broker(t,
		pipelines.TopicSpec{Name: "zb.in", Partitions: 2},
		pipelines.TopicSpec{Name: "zb.out", Partitions: 2})
	kafkatest.ProduceN(t, brokers, "zb.in", n, gen)

	var countA, countB atomic.Int64
	stalled, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	regA := prometheus.NewRegistry()
	cfgA := kafkatest.Config(brokers)
	cfgA.Registerer = regA
	cfgA.MaxBatch = 100
	cfgA.SessionTimeout = 30 * time.Second
	cfgA.ClientOptions = []kgo.Opt{kgo.ClientID("zombie-a")}
	kafkatest.Run(t, cfgA, upperStage("zb", "zb.in", "zb.out", &countA, func(pipelines.Record) error {
		if countA.Load() >= 300 && once.CompareAndSwap(false, true) {
			close(stalled)
			<-release
		}
		return nil
	}))
	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("A never stalled")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, "zb")
	if err != nil {
		t.Fatal(err)
	}
	var memberA string
	for _, m := range groups["zb"].Members {
		if m.ClientID == "zombie-a" {
			memberA = m.MemberID
		}
	}
	if memberA == "" {
		t.Fatalf("A not in group: %+v", groups["zb"])
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "zb"
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = memberA
	leave.Members = append(leave.Members, m)
	resp, err := leave.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("remove A from the group: %v", err)
	}

	cfgB := kafkatest.Config(brokers)
	kafkatest.Run(t, cfgB, upperStage("zb", "zb.in", "zb.out", &countB, nil))
	waitAtLeast(t, &countB, n-300)
	close(release)

	kafkatest.WaitRecords(t, brokers, "zb.out", n, 30*time.Second)
	waitMetricAtLeast(t, regA, "minecart_pipeline_transactions_total", map[string]string{"stage": "zb", "result": "aborted"}, 1)
	time.Sleep(200 * time.Millisecond)
	recs, err := kafkatest.ReadCommitted(ctx, brokers, "zb.out")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, recs, n)
}
