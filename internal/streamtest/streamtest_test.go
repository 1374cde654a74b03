package streamtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/monasca-connect/monasca-connect/internal/streamtest"
)

// upper is a processor that upper-cases messages and records that it was
// closed.
type upper struct{ closed *atomic.Bool }

func (u upper) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	b, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	return service.MessageBatch{service.NewMessage(bytes.ToUpper(b))}, nil
}

func (u upper) Close(context.Context) error {
	u.closed.Store(true)
	return nil
}

func batch(lines ...string) service.MessageBatch {
	var b service.MessageBatch
	for _, l := range lines {
		b = append(b, service.NewMessage([]byte(l)))
	}
	return b
}

func contents(t *testing.T, batch service.MessageBatch) string {
	t.Helper()
	var lines []string
	for _, m := range batch {
		b, err := m.AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	return strings.Join(lines, " ")
}

func TestRunProcessorInOrder(t *testing.T) {
	env := service.NewEnvironment()
	var closed atomic.Bool
	if err := env.RegisterProcessor("streamtest_upper", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Resources) (service.Processor, error) { return upper{&closed}, nil }); err != nil {
		t.Fatal(err)
	}
	got := streamtest.RunProcessor(t, env, "streamtest_upper: {}", batch("a", "b"), batch("c"), batch("d", "e", "f"))
	if want := "A B C D E F"; contents(t, got) != want {
		t.Errorf("outputs %q, want %q", contents(t, got), want)
	}
	if !closed.Load() {
		t.Error("the processor was not closed")
	}
}

func TestRunProcessorGlobalEnvironmentAndMetrics(t *testing.T) {
	got := streamtest.Options{MetricsYAML: "none: {}"}.RunProcessor(t, "mapping: root = content().uppercase()", batch("x"), batch("y"))
	if want := "X Y"; contents(t, got) != want {
		t.Errorf("outputs %q, want %q", contents(t, got), want)
	}
}

// fatalRecorder is a test whose Fatal and Fatalf record the message and
// end the goroutine, as a real test's do.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestRunProcessorStreamStops checks that a stream that stops before it
// processes a batch, here as its processor cannot be built, fails the test
// rather than hanging.
func TestRunProcessorStreamStops(t *testing.T) {
	env := service.NewEnvironment()
	if err := env.RegisterProcessor("streamtest_broken", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Resources) (service.Processor, error) {
			return nil, errors.New("broken")
		}); err != nil {
		t.Fatal(err)
	}
	f := &fatalRecorder{TB: t}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		streamtest.RunProcessor(f, env, "streamtest_broken: {}", batch("a"))
		f.msg = "returned"
	}()
	<-ended
	if !strings.Contains(f.msg, "the stream stopped before processing batch 1 of 1") || !strings.Contains(f.msg, "broken") {
		t.Errorf("failure %q, want one saying the stream stopped, with its error", f.msg)
	}
}
