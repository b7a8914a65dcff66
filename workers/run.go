package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/policies"
	"github.com/reins-dev/reins/workflows"
)

// DialTemporal connects to Temporal following Temporal's environment
// conventions (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API key
// variables, and the temporal.toml profile), with logs through logger and
// cfg's payload codec.
func DialTemporal(ctx context.Context, logger *slog.Logger, cfg Config) (sdkclient.Client, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, fmt.Errorf("load Temporal client settings (TEMPORAL_* variables, temporal.toml): %w", err)
	}
	opts.Logger = log.NewStructuredLogger(logger)
	// Lets workflows.Start tell a started remediation from a joined one.
	opts.ConnectionOptions.DialOptions = append(opts.ConnectionOptions.DialOptions, grpc.WithChainUnaryInterceptor(workflows.StartedInterceptor))
	if err := cfg.TemporalOptions(&opts, logger); err != nil {
		return nil, err
	}
	c, err := sdkclient.DialContext(ctx, opts)
	if err != nil {
		addr := opts.HostPort
		if addr == "" {
			addr = sdkclient.DefaultHostPort
		}
		return nil, fmt.Errorf("connect to Temporal at %s (set TEMPORAL_ADDRESS, or run `reins dev`): %w", addr, err)
	}
	return c, nil
}

// Client-side rate limits of the worker's Kubernetes clients (its own and,
// as they copy its settings, every step's). client-go's defaults (5 requests a second, bursts of 10) are meant
// for small tools: every remediation in flight reads its targets and polls
// its rollouts through them, and would queue behind the others. The API
// server's own flow control (API Priority and Fairness) still applies.
const (
	KubeQPS   = 50
	KubeBurst = 100
)

// KubeConfig loads the worker's own Kubernetes identity: the kubeconfig file
// at path, else the default loading rules ($KUBECONFIG, ~/.kube/config), else
// the in-cluster service account; with KubeQPS and KubeBurst.
func KubeConfig(path string) (*rest.Config, error) {
	cfg, err := kubeConfig(path)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = KubeQPS, KubeBurst
	return cfg, nil
}

func kubeConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if path == "" {
			if in, inErr := rest.InClusterConfig(); inErr == nil {
				return in, nil
			}
		}
		return nil, fmt.Errorf("load kubeconfig (set kubeconfig in the config or KUBECONFIG): %w", err)
	}
	return cfg, nil
}

// Worker is a configured reins worker.
type Worker struct {
	worker worker.Worker
	engine *policies.Engine
	logger *slog.Logger
	audit  *AuditSinks
	// background runs beside the worker (Vault token renewal, revocation retries).
	background func(context.Context)
}

// NewWorker builds a worker on cfg.TaskQueue with every workflow and activity
// registered. kube is the worker's own (read-only) identity: it reads
// targets. Steps write with credentials minted per step from Vault, or with
// kube itself when cfg.Credentials is "static".
func NewWorker(cfg Config, c sdkclient.Client, kube kubernetes.Interface, logger *slog.Logger) (*Worker, error) {
	engine, err := policies.New(policies.Options{Dir: cfg.PolicyDir, Logger: logger})
	if err != nil {
		// Keep going: with no good bundle every step is denied, and Watch
		// picks up a fixed bundle without a restart.
		logger.Error("policy bundle refused; every step is denied until it is fixed", "dir", cfg.PolicyDir, "error", err)
	}
	keys, err := cfg.Approvals.PublicKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		logger.Warn("no trusted approval keys configured: co-signed steps can only time out as denied")
	}
	writers, background, err := stepCredentials(cfg, kube, logger)
	if err != nil {
		return nil, err
	}
	sinks, err := OpenAuditSinks(context.Background(), cfg.Audit, logger)
	if err != nil {
		return nil, err
	}
	slack, err := cfg.SlackActivity()
	if err != nil {
		_ = sinks.Close()
		return nil, err
	}
	w := worker.New(c, cfg.TaskQueue, worker.Options{})
	RegisterWorkflows(w)
	RegisterActivities(w, Activities{
		Policy:     &activities.Policy{Engine: engine, Reader: kube, Denials: VisibilityDenials{Client: c}, Cluster: cfg.Cluster},
		Kubernetes: &activities.Kubernetes{Reader: kube, Writers: writers, Cluster: cfg.Cluster},
		Approvals:  &activities.Approvals{Keys: keys},
		Audit:      &activities.Audit{Sinks: sinks.Sinks},
		Slack:      slack,
	})
	return &Worker{worker: w, engine: engine, logger: logger, audit: sinks, background: background}, nil
}

// Run polls until ctx ends, then stops gracefully: in-flight activities get
// the worker's stop timeout to finish, and workflows resume on any worker.
func (w *Worker) Run(ctx context.Context) error {
	go func() {
		if err := w.engine.Watch(ctx); err != nil {
			w.logger.Error("policy bundle watch stopped", "error", err)
		}
	}()
	if w.background != nil {
		go w.background(ctx)
	}
	if err := w.worker.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	<-ctx.Done()
	w.worker.Stop()
	if err := w.audit.Close(); err != nil {
		w.logger.Warn("close audit sinks", "error", err)
	}
	return nil
}

// VisibilityDenials counts denied remediations through Temporal's visibility
// API (the ReinsRequester and ReinsState search attributes).
type VisibilityDenials struct {
	Client sdkclient.Client
}

var _ activities.DenialCounter = VisibilityDenials{}

// CountDenials counts requester's remediations that ended Denied since.
func (v VisibilityDenials) CountDenials(ctx context.Context, requester string, since time.Time) (int, error) {
	if strings.ContainsAny(requester, `'"\`) {
		return 0, errors.New("requester name contains a quote; cannot query it")
	}
	q := fmt.Sprintf("ReinsRequester = '%s' AND ReinsState = 'Denied' AND CloseTime > '%s'", requester, since.UTC().Format(time.RFC3339))
	resp, err := v.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
	if err != nil {
		return 0, fmt.Errorf("count denied remediations: %w", err)
	}
	return int(resp.GetCount()), nil
}

// TemporalNamespace is the namespace DialTemporal connects to.
func TemporalNamespace() string {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil || opts.Namespace == "" {
		return sdkclient.DefaultNamespace
	}
	return opts.Namespace
}
