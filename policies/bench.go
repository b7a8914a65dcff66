package policies

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"time"

	"github.com/reins-dev/reins/remediation"
)

// Latency summarizes the duration of N decisions.
type Latency struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50"`
	P99  time.Duration `json:"p99"`
	Max  time.Duration `json:"max"`
	Mean time.Duration `json:"mean"`
	// AllocsPerDecision and BytesPerDecision are the heap allocations of one
	// decision, on average, and GCs the garbage collections that ran during
	// the measurement: the slowest decisions are those a collection slowed.
	// Other goroutines of the process count too.
	AllocsPerDecision uint64 `json:"allocs_per_decision"`
	BytesPerDecision  uint64 `json:"bytes_per_decision"`
	GCs               uint32 `json:"gcs"`
	// GCCPU is the CPU time the garbage collector used during the
	// measurement, as the Go runtime estimates it (its own goroutines and
	// the assists it asked of the deciding one).
	GCCPU time.Duration `json:"gc_cpu"`
	// EngineDenials counts the decisions the engine made itself (see the
	// Reason constants): on a busy machine, a decision may take longer than
	// the engine's evaluation timeout.
	EngineDenials int `json:"engine_denials"`
	// Decision is the last decision made, to show what was measured.
	Decision remediation.Decision `json:"decision"`
}

func (l Latency) String() string {
	s := fmt.Sprintf("%d decisions: p50 %s, p99 %s, max %s, mean %s; %d allocations (%d B) per decision, %d GCs (%s CPU)",
		l.N, l.P50, l.P99, l.Max, l.Mean, l.AllocsPerDecision, l.BytesPerDecision, l.GCs, l.GCCPU.Round(time.Millisecond))
	if l.EngineDenials > 0 {
		s += fmt.Sprintf("; %d denied by the engine itself (timeout?)", l.EngineDenials)
	}
	return s
}

// gcCPUMetric is the runtime metric of the collector's CPU time.
const gcCPUMetric = "/cpu/classes/gc/total:cpu-seconds"

// gcCPU is the CPU time the collector used since the process started.
func gcCPU() time.Duration {
	sample := []metrics.Sample{{Name: gcCPUMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64 {
		return 0 // not supported by this Go runtime
	}
	return time.Duration(sample[0].Value.Float64() * float64(time.Second))
}

// measureWarmup is how many decisions Measure makes before it starts timing,
// at most: the first decisions of a process fill the caches of the CPU, of
// the Go runtime and of the evaluator, which a running worker has filled.
const measureWarmup = 500

// Measure makes n decisions on in, one after the other, and returns their
// latency percentiles (nearest rank); up to measureWarmup decisions it makes
// before are not counted. It stops with an error when ctx ends or n < 1. Use
// TypicalInput for a representative input.
func (e *Engine) Measure(ctx context.Context, in Input, n int) (Latency, error) {
	if n < 1 {
		return Latency{}, errors.New("measure policy decisions: n must be at least 1")
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	for range min(n, measureWarmup) {
		if err := ctx.Err(); err != nil {
			return Latency{}, fmt.Errorf("measure policy decisions: stopped while warming up: %w", err)
		}
		e.Decide(ctx, in)
	}
	durs := make([]time.Duration, n)
	var total time.Duration
	var d remediation.Decision
	engineDenials := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	gcBefore := gcCPU()
	for i := range durs {
		if err := ctx.Err(); err != nil {
			return Latency{}, fmt.Errorf("measure policy decisions: stopped after %d of %d: %w", i, n, err)
		}
		start := time.Now()
		d = e.Decide(ctx, in)
		durs[i] = time.Since(start)
		total += durs[i]
		if engineDenied(d) {
			engineDenials++
		}
	}
	gcAfter := gcCPU()
	runtime.ReadMemStats(&after)
	slices.Sort(durs)
	return Latency{
		N:                 n,
		P50:               percentile(durs, 50),
		P99:               percentile(durs, 99),
		Max:               durs[n-1],
		Mean:              total / time.Duration(n),
		AllocsPerDecision: (after.Mallocs - before.Mallocs) / uint64(n),
		BytesPerDecision:  (after.TotalAlloc - before.TotalAlloc) / uint64(n),
		GCs:               after.NumGC - before.NumGC,
		GCCPU:             gcAfter - gcBefore,
		EngineDenials:     engineDenials,
		Decision:          d,
	}, nil
}

// percentile is the nearest-rank percentile p of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// TypicalInput is a typical step for benchmarks: an agent in its scope scales
// a production Deployment from 3 to 4 replicas, with cluster state and
// history, so that every rule of the default bundle is evaluated. The default
// bundle allows it (risk medium).
func TypicalInput() Input {
	replicas, current := int32(4), int32(3)
	plan := remediation.Plan{
		Incident:    remediation.Incident{Source: "alertmanager", Fingerprint: "3f2a9c1e7b5d4a60", URL: "https://alertmanager.example/#/alerts?fingerprint=3f2a9c1e7b5d4a60"},
		Requester:   remediation.Requester{Kind: remediation.RequesterAgent, Name: "sre-agent"},
		Environment: "production",
		Explanation: "checkout's p99 latency is above its SLO because every replica is CPU-saturated; one more replica brings it back.",
		Steps: []remediation.Step{{
			Action:        remediation.ActionScale,
			Target:        remediation.Target{Cluster: "prod-eu-1", Namespace: "shop", Kind: remediation.KindDeployment, Name: "checkout"},
			Params:        remediation.Params{Replicas: &replicas},
			Justification: "all 3 replicas run at 95% CPU and p99 latency is 2.4s against an SLO of 500ms",
		}},
	}
	state := &remediation.Snapshot{
		Exists:         true,
		UID:            "6c1e0f7a-93b2-4d5e-8f00-2a7d1c9b4e11",
		Replicas:       &current,
		Images:         []remediation.ContainerImage{{Container: "app", Image: "registry.example/checkout:v1.5.0"}},
		PreviousImages: []string{"registry.example/checkout:v1.4.2", "registry.example/checkout:v1.4.1"},
		Labels:         map[string]string{"app": "checkout", "team": "payments"},
	}
	history := &History{RequesterActions: 2, RequesterDenials: 0, TargetActions: 1, NamespaceQuarantines: 0, WindowSeconds: 3600}
	return NewInput(plan, 0, time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), state, history)
}

// Floor is what this machine does to the latency of a computation that
// allocates nothing: a busy loop that takes Work at best, timed N times. Its
// P99 is the lowest p99 any decision of that p50 can have here, whatever the
// policy engine does: the rest is the machine (other processes, a virtual
// CPU's steal time, interrupts).
type Floor struct {
	Work time.Duration `json:"work"`
	N    int           `json:"n"`
	P50  time.Duration `json:"p50"`
	P99  time.Duration `json:"p99"`
}

func (f Floor) String() string {
	return fmt.Sprintf("a busy loop of %s, no allocation, timed %d times: p50 %s, p99 %s", f.Work, f.N, f.P50, f.P99)
}

// floorSink keeps the busy loop from being optimized away.
var floorSink atomic.Uint64

// spin runs the busy loop n rounds.
func spin(n int) {
	x := uint64(1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	floorSink.Store(x)
}

// MeasureFloor times n runs of a busy loop calibrated to take work (at
// least a microsecond) and returns their percentiles; it stops with an error
// when ctx ends or n < 1.
func MeasureFloor(ctx context.Context, work time.Duration, n int) (Floor, error) {
	if n < 1 {
		return Floor{}, errors.New("measure the machine's floor: n must be at least 1")
	}
	work = max(work, time.Microsecond)
	// Calibrate: the fastest of a few timings of a known number of rounds.
	const probe = 1 << 16
	best := time.Duration(1<<63 - 1)
	for range 20 {
		start := time.Now()
		spin(probe)
		best = min(best, time.Since(start))
	}
	rounds := max(1, int(float64(probe)*float64(work)/float64(max(best, time.Nanosecond))))
	durs := make([]time.Duration, n)
	for i := range durs {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return Floor{}, fmt.Errorf("measure the machine's floor: stopped after %d of %d: %w", i, n, err)
			}
		}
		start := time.Now()
		spin(rounds)
		durs[i] = time.Since(start)
	}
	slices.Sort(durs)
	return Floor{Work: work, N: n, P50: percentile(durs, 50), P99: percentile(durs, 99)}, nil
}
