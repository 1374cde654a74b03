// Package streamtest runs a Redpanda Connect processor in a real stream for
// tests: a stream built with service.StreamBuilder whose input is a producer
// func, whose only processor is the one given as YAML, and whose output is a
// consumer func that collects every message. The batches are produced one
// after the other, each waiting for its acknowledgement, then the stream is
// stopped (which flushes what the processor holds) and the collected messages
// are returned in the order the output received them.
//
// A run is bounded: the stream's context expires after Timeout, stopping is
// given StopTimeout, and so is Run's returning after it; the test fails, rather than hangs, when the stream stops before a batch has
// been processed, when producing or stopping errs or takes too long, or when
// the stream's Run returns an error other than context.Canceled. Logging is
// off. Importing the package registers benthos's stock (pure) components,
// which every stream needs.
//
// It is meant for tests only: every function takes the test and fails it
// rather than returning errors.
package streamtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	// A stream needs the stock components (the none tracer, the logger).
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// Timeout is the life of a run's stream context, which producing the
// batches and the stream's Run share; StopTimeout bounds stopping the
// stream, and then again its Run returning.
const (
	Timeout     = 30 * time.Second
	StopTimeout = 10 * time.Second
)

// Options configures a run; the zero value runs in the global environment
// with the default metrics.
type Options struct {
	// Env is the environment whose plugins the stream uses; nil is
	// service.GlobalEnvironment().
	Env *service.Environment
	// MetricsYAML, when not empty, is the stream's metrics config (as for
	// StreamBuilder.SetMetricsYAML), for example an exporter registered
	// in Env.
	MetricsYAML string
}

// RunProcessor runs the batches through processorYAML in a stream of env
// (nil: the global environment) and returns the output messages in order.
func RunProcessor(t testing.TB, env *service.Environment, processorYAML string, batches ...service.MessageBatch) service.MessageBatch {
	t.Helper()
	return Options{Env: env}.RunProcessor(t, processorYAML, batches...)
}

// RunProcessor runs the batches through processorYAML in a stream
// configured by o and returns the output messages in order.
func (o Options) RunProcessor(t testing.TB, processorYAML string, batches ...service.MessageBatch) service.MessageBatch {
	t.Helper()
	env := o.Env
	if env == nil {
		env = service.GlobalEnvironment()
	}
	sb := env.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: OFF"); err != nil {
		t.Fatal(err)
	}
	if o.MetricsYAML != "" {
		if err := sb.SetMetricsYAML(o.MetricsYAML); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.AddProcessorYAML(processorYAML); err != nil {
		t.Fatal(err)
	}
	produce, err := sb.AddBatchProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out service.MessageBatch
	if err := sb.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, batch...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	for i, batch := range batches {
		produced := make(chan error, 1)
		go func() { produced <- produce(ctx, batch) }()
		select {
		case err := <-produced:
			if err != nil {
				t.Fatalf("processing batch %d of %d: %v", i+1, len(batches), err)
			}
		case err := <-done:
			t.Fatalf("the stream stopped before processing batch %d of %d: %v", i+1, len(batches), err)
		}
	}
	if err := stream.StopWithin(StopTimeout); err != nil {
		t.Fatalf("stopping the stream: %v", err)
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("the stream: %v", err)
		}
	case <-time.After(StopTimeout):
		t.Fatalf("the stream did not return within %v of stopping", StopTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}
