package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/spf13/cobra"

	"github.com/reins-dev/reins/devstack"
	"github.com/reins-dev/reins/examples"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/intake"
	"github.com/reins-dev/reins/policies"
	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/workers"
	"github.com/reins-dev/reins/workflows"
)

type devOptions struct {
	dir          string
	temporalPort int
	uiPort       int
	natsPort     int
	gatewayPort  int
	exit         bool
	approve      bool
}

func newDevCmd(g *globals) *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the local stack (Temporal with its UI, a Kubernetes API with simulated nodes, a worker) and a demo remediation",
		Long: `Run the local stack and a demo remediation end to end:
  - a Temporal dev server with its UI and reins' search attributes;
  - a real Kubernetes control plane (etcd, kube-apiserver, controller-manager,
    scheduler) with kwok's simulated nodes, so rollouts really complete;
  - NATS with JetStream, embedded, holding the audit stream (records also go
    to <dir>/audit.jsonl) and the event intake's stream;
  - the gateway: codec server, agent API, approvals API and the event
    intake, whose trigger scales a shop deployment on a
    KubeDeploymentReplicasMismatch alert (token in <dir>/intake.token; it
    prints a curl example and the Alertmanager receiver);
  - a Vault dev server whose Kubernetes secrets engine mints each step's
    credential (deploy/vault-roles.yaml) and whose transit engine holds the
    payload codec's key;
  - a reins worker, read-only in Kubernetes (deploy/worker-rbac.yaml), that
    logs in to Vault with AppRole;
then roll out shop/checkout (v2.3.0, then v2.3.1) and run the sample plan
examples/checkout-rollback.json as the agent "sre-agent": roll back to v2.3.0
(production set-image: one co-signer, given as "oncall@example.com" unless
--approve=false) and scale 3 → 6. It keeps running until interrupted, so you
can look at the Temporal UI and drive more remediations with the CLI
(the exports it prints point the CLI at it); --exit stops after the demo.
The tools come from scripts/setup.sh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), g.logger(), o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", "", "state folder (default: <user cache>/reins/dev)")
	cmd.Flags().IntVar(&o.temporalPort, "temporal-port", 7233, "Temporal frontend port on 127.0.0.1")
	cmd.Flags().IntVar(&o.uiPort, "ui-port", 8233, "Temporal UI port on 127.0.0.1")
	cmd.Flags().IntVar(&o.natsPort, "nats-port", 4222, "port on 127.0.0.1 of the embedded NATS (the audit stream)")
	cmd.Flags().IntVar(&o.gatewayPort, "gateway-port", 8081, "port on 127.0.0.1 of the gateway (the codec server the Temporal UI decodes payloads with)")
	cmd.Flags().BoolVar(&o.exit, "exit", false, "stop everything once the demo remediation ended")
	cmd.Flags().BoolVar(&o.approve, "approve", true, "co-sign the demo's critical step as oncall@example.com (false: do it yourself with reins approve)")
	return cmd
}

func runDev(ctx context.Context, logger *slog.Logger, o devOptions, out io.Writer) error {
	if o.dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("find a state folder (give --dir): %w", err)
		}
		o.dir = filepath.Join(cache, "reins", "dev")
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", o.dir, err)
	}
	// Workflows of an earlier run would refer to a cluster that is gone.
	if err := os.RemoveAll(filepath.Join(o.dir, "temporal")); err != nil {
		return fmt.Errorf("clear %s: %w", o.dir, err)
	}
	started := time.Now()

	attrs := map[string]string{}
	for _, a := range workflows.SearchAttributes() {
		name, typ, _ := strings.Cut(a, "=")
		attrs[name] = typ
	}
	tmp, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
		Dir: filepath.Join(o.dir, "temporal"), Port: o.temporalPort, UI: true, UIPort: o.uiPort,
		UICodecEndpoint:  devCodecEndpoint(o.gatewayPort),
		SearchAttributes: attrs, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer tmp.Stop()
	kube, err := devstack.StartKube(ctx, devstack.KubeOptions{Dir: filepath.Join(o.dir, "kube"), Logger: logger})
	if err != nil {
		return err
	}
	defer kube.Stop()
	kc, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		return fmt.Errorf("build Kubernetes client: %w", err)
	}
	// Vault mints each step's credential; the worker itself only reads.
	vault, vaultSetup, err := startDevVault(ctx, logger, o.dir, kube)
	if err != nil {
		return err
	}
	defer vault.Stop()
	workerKubeConfig, err := workers.KubeConfig(vaultSetup.WorkerKubeconfig)
	if err != nil {
		return err
	}
	workerKC, err := kubernetes.NewForConfig(workerKubeConfig)
	if err != nil {
		return fmt.Errorf("build the worker's Kubernetes client: %w", err)
	}

	// The audit trail: JetStream on an embedded NATS, and a JSON-lines file.
	natsSrv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Dir: filepath.Join(o.dir, "nats"), Port: o.natsPort, Logger: logger})
	if err != nil {
		return err
	}
	defer natsSrv.Stop()
	auditCfg := workers.DefaultAuditConfig()
	auditCfg.NATS.URL = natsSrv.URL
	auditCfg.File.Path = filepath.Join(o.dir, "audit.jsonl")

	cfg, cfgPath, err := writeDevConfig(o.dir, vaultSetup.WorkerKubeconfig, tmp.UIURL, auditCfg, devIntake(o.dir, natsSrv.URL), devSecurity(o.dir, vaultSetup, tmp.UIURL, o.gatewayPort))
	if err != nil {
		return err
	}
	copts := sdkclient.Options{HostPort: tmp.Address, Namespace: tmp.Namespace, Logger: log.NewStructuredLogger(logger)}
	if err := cfg.TemporalOptions(&copts, logger); err != nil {
		return err
	}
	c, err := sdkclient.DialContext(ctx, copts)
	if err != nil {
		return fmt.Errorf("connect to the dev Temporal server: %w", err)
	}
	defer c.Close()
	w, err := workers.NewWorker(cfg, c, workerKC, logger)
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	defer func() { stopWorker(); <-workerDone }()
	// The gateway dials Temporal as `reins gateway` does, from TEMPORAL_*
	// variables: point them at this server, whatever the shell had.
	for k, v := range map[string]string{"TEMPORAL_ADDRESS": tmp.Address, "TEMPORAL_NAMESPACE": tmp.Namespace} {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("set %s for the gateway: %w", k, err)
		}
	}
	stopGateway, err := startDevGateway(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// Before NATS, Vault and Temporal stop: the gateway drains its doors.
	defer stopGateway()
	logger.Info("stack up", "took", time.Since(started).Round(time.Millisecond))

	fmt.Fprintf(out, "\nreins dev is up (state in %s). In another shell:\n", o.dir)
	fmt.Fprintf(out, "  export TEMPORAL_ADDRESS=%s KUBECONFIG=%s REINS_CONFIG=%s\n", tmp.Address, kube.KubeconfigPath, cfgPath)
	fmt.Fprintf(out, "  Temporal UI: %s\n", tmp.UIURL)
	fmt.Fprintf(out, "  Vault: export VAULT_ADDR=%s VAULT_TOKEN=$(cat %s)\n", vault.Addr, devRootTokenFile(o.dir))
	fmt.Fprintf(out, "  Payloads are encrypted (Vault transit); the UI decodes them through %s:\n", devCodecEndpoint(o.gatewayPort))
	fmt.Fprintf(out, "    log in once at %s/login with the token in %s, and turn on\n", devCodecEndpoint(o.gatewayPort), cfg.Gateway.TokenFile)
	fmt.Fprintf(out, "    \"include cross-origin credentials\" in the UI's codec server settings\n")
	printDevIntake(out, cfg, tmp.Address)
	fmt.Fprintln(out)

	if err := demo(ctx, logger, o, cfg, c, tmp.Namespace, kc, out); err != nil {
		return err
	}
	if o.exit {
		return nil
	}
	fmt.Fprintf(out, "\nStill running: Temporal UI %s; Ctrl-C to stop.\n", tmp.UIURL)
	<-ctx.Done()
	return nil
}

// writeDevConfig makes a signing key and the config the CLI and worker share.
func writeDevConfig(dir, kubeconfig, ui string, audit workers.AuditConfig, in workers.IntakeConfig, sec devSecurityConfig) (workers.Config, string, error) {
	keyFile := filepath.Join(dir, "approval.key")
	pub, err := writeSigningKey(keyFile)
	if err != nil {
		return workers.Config{}, "", err
	}
	cfg := workers.DefaultConfig()
	cfg.Kubeconfig = kubeconfig
	cfg.TemporalUI = ui
	cfg.Approvals = workers.ApprovalConfig{
		TrustedKeys:    map[string]string{"dev": base64.StdEncoding.EncodeToString(pub)},
		SigningKeyFile: keyFile,
		SigningKeyID:   "dev",
	}
	cfg.Identity = workers.Identity{Name: "oncall@example.com", Groups: []string{"oncall-sre", "sre-leads"}}
	// The gateway's clients: the demo agent, and the on-call human whose
	// token the CLI (reins approve) uses.
	for _, c := range []workers.ClientConfig{
		{Name: devAgent, Kind: gateway.KindAgent, Owner: "owner@example.com"},
		{Name: cfg.Identity.Name, Kind: gateway.KindHuman, Groups: cfg.Identity.Groups},
	} {
		token, hash, err := gateway.NewClientToken()
		if err != nil {
			return cfg, "", err
		}
		if err := os.WriteFile(devTokenFile(dir, c.Name), []byte(token+"\n"), 0o600); err != nil {
			return cfg, "", fmt.Errorf("write the %s token: %w", c.Name, err)
		}
		c.TokenSHA256 = hash
		cfg.Clients = append(cfg.Clients, c)
	}
	cfg.Client = workers.GatewayClientConfig{URL: "http://" + sec.Gateway.Listen, TokenFile: devTokenFile(dir, cfg.Identity.Name)}
	cfg.Audit = audit
	if err := writeDevIntakeToken(in.TokenFile); err != nil {
		return cfg, "", err
	}
	cfg.Intake = in
	// The intake's trigger is an agent too: the policy must know its scope.
	cfg.PolicyDir = filepath.Join(dir, "policy")
	if err := writeDevPolicy(cfg.PolicyDir, devTriggerAgent, devstack.SampleNamespace); err != nil {
		return cfg, "", err
	}
	cfg.Credentials = workers.CredentialsVault
	cfg.Vault, cfg.Codec, cfg.Gateway = sec.Vault, sec.Codec, sec.Gateway
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return cfg, "", fmt.Errorf("encode dev config: %w", err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return cfg, "", fmt.Errorf("write dev config: %w", err)
	}
	return cfg, path, nil
}

// devAgent is the demo's agent.
const devAgent = "sre-agent"

// devTokenFile holds the dev gateway client token of name.
func devTokenFile(dir, name string) string { return filepath.Join(dir, name+".token") }

// demo rolls out the sample workload and runs the sample plan on it.
func demo(ctx context.Context, logger *slog.Logger, o devOptions, cfg workers.Config, c sdkclient.Client, namespace string, kc kubernetes.Interface, out io.Writer) error {
	fmt.Fprintf(out, "demo: rolling out %s/%s with %s, then %s (3 replicas)\n", devstack.SampleNamespace, devstack.SampleName, devstack.SampleGoodImage, devstack.SampleBadImage)
	if err := devstack.CreateSample(ctx, kc); err != nil {
		return err
	}
	startedAt := time.Now()
	started, err := devPropose(ctx, cfg, o.dir)
	if err != nil {
		return err
	}
	run := c.GetWorkflow(ctx, started.ID, started.RunID)
	fmt.Fprintf(out, "demo: agent %s proposed examples/checkout-rollback.json through the gateway (POST /v1/remediations); remediation %s started\n", devAgent, run.GetID())
	fmt.Fprintf(out, "      %s\n", started.UIURL)

	if o.approve {
		if err := demoApprove(ctx, cfg, c, run.GetID(), out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "demo: step 0 needs a co-signer: reins approve %s --step 0\n", run.GetID())
	}
	st, err := workflows.Result(ctx, run)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: remediation ended %s after %s\n", st.State, time.Since(startedAt).Round(time.Millisecond))
	if err := printStatus(out, st, "text"); err != nil {
		return err
	}
	d, err := kc.AppsV1().Deployments(devstack.SampleNamespace).Get(ctx, devstack.SampleName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read back %s/%s: %w", devstack.SampleNamespace, devstack.SampleName, err)
	}
	fmt.Fprintf(out, "demo: %s/%s now runs %s with %d/%d replicas available (annotated %s=%s)\n",
		d.Namespace, d.Name, d.Spec.Template.Spec.Containers[0].Image, d.Status.AvailableReplicas, *d.Spec.Replicas,
		remediation.AnnotationRemediation, d.Annotations[remediation.AnnotationRemediation])
	fmt.Fprintf(out, "demo: its story: reins explain %s\n", st.ID)
	fmt.Fprintf(out, "demo: its audit trail (NATS stream %s, and %s): reins audit verify --remediation %s\n", cfg.Audit.NATS.Stream, cfg.Audit.File.Path, st.ID)
	if st.State != remediation.StateCompleted {
		return &exitCode{exitNotCompleted, fmt.Errorf("demo remediation ended %s: %s", st.State, st.Reason)}
	}
	logger.Debug("demo done")
	return nil
}

// demoApprove waits for the step that needs co-signing and approves it
// through the gateway's approvals API as the dev on-call identity, exactly as
// `reins approve` does.
func demoApprove(ctx context.Context, cfg workers.Config, c sdkclient.Client, id string, out io.Writer) error {
	base, err := cfg.Client.BaseURL()
	if err != nil {
		return err
	}
	token, err := cfg.Client.Token()
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		st, err := workflows.GetStatus(ctx, c, id)
		if err != nil {
			return err
		}
		if st.State != remediation.StateRunning {
			return nil
		}
		for i, s := range st.Steps {
			if s.State != remediation.StepAwaitingApproval || s.Decision == nil {
				continue
			}
			fmt.Fprintf(out, "demo: step %d (%s) needs %d co-signer(s) from %s: %s\n", i, s.Description, s.Decision.Approvers, s.Decision.Group, strings.Join(s.Decision.Reasons, "; "))
			fmt.Fprintf(out, "demo: approving as %s: reins approve %s --step %d\n", cfg.Identity.Name, id, i)
			_, err := postApproval(ctx, base, token, id, gateway.ApprovalRequest{Step: &i, Verdict: remediation.VerdictApprove, Comment: "demo: approved by reins dev", Digest: s.Digest})
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("demo: no step asked for co-signature within 2 minutes")
		case <-tick.C:
		}
	}
}

// devPropose posts the sample plan to the gateway's agent API as the demo
// agent, exactly as an agent would.
func devPropose(ctx context.Context, cfg workers.Config, dir string) (gateway.ProposeResponse, error) {
	var res gateway.ProposeResponse
	token, err := os.ReadFile(devTokenFile(dir, devAgent))
	if err != nil {
		return res, fmt.Errorf("read the %s token: %w", devAgent, err)
	}
	base, err := cfg.Client.BaseURL()
	if err != nil {
		return res, err
	}
	err = postGateway(ctx, base, strings.TrimSpace(string(token)), gateway.RemediationsPath, json.RawMessage(examples.CheckoutRollback),
		http.StatusAccepted, &res, "the sample plan")
	if err != nil {
		return res, fmt.Errorf("demo: %w", err)
	}
	if res.ID == "" {
		return res, errors.New("demo: the gateway accepted the sample plan but named no remediation")
	}
	return res, nil
}

// The dev intake's trigger: a replicas-mismatch alert on the sample
// workload scales it out.
const (
	devTrigger       = "dev-replicas-mismatch"
	devTriggerAgent  = "trigger:" + devTrigger
	devTriggerAlert  = "KubeDeploymentReplicasMismatch"
	devTriggerLabels = `namespace=~"shop(-.*)?"`
	devTriggerScale  = 5
)

// devIntake is the dev gateway's intake: the trigger, an HTTP token (in
// <dir>/intake.token, new every run) and queued delivery on the embedded
// NATS, whose stream the gateway creates.
func devIntake(dir, natsURL string) workers.IntakeConfig {
	playbook := fmt.Sprintf(`{"environment": "production", "explanation": "{{ .annotations.summary }}",
 "steps": [{"action": "kubernetes.scale",
  "target": {"namespace": "{{ .labels.namespace }}", "kind": "Deployment", "name": "{{ .labels.deployment }}"},
  "params": {"replicas": %d},
  "justification": "alert {{ .event.fingerprint }}: {{ .labels.deployment }} is short of ready replicas; add capacity"}]}`, devTriggerScale)
	return workers.IntakeConfig{
		TokenFile:    filepath.Join(dir, "intake.token"),
		HTTPDelivery: workers.DeliveryQueue,
		Triggers: []intake.TriggerConfig{{
			Name:     devTrigger,
			Match:    intake.MatchConfig{Kind: intake.KindAlertmanager, Type: devTriggerAlert, Labels: []string{devTriggerLabels}},
			Owner:    "owner@example.com",
			Playbook: json.RawMessage(playbook),
		}},
		NATS: workers.IntakeNATSConfig{URL: natsURL, CreateStream: true},
	}
}

// writeDevIntakeToken writes a new intake token to path.
func writeDevIntakeToken(path string) error {
	token, _, err := gateway.NewClientToken()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the intake token: %w", err)
	}
	return nil
}

// writeDevPolicy writes the built-in policy bundle into dir (afresh, so
// that it is the one this binary has), with agent in scope of namespace.
func writeDevPolicy(dir, agent, namespace string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear the dev policy bundle: %w", err)
	}
	if err := policies.WriteDefaultBundle(dir); err != nil {
		return err
	}
	path := filepath.Join(dir, "data.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("dev policy bundle: %w", err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("dev policy bundle %s: %w", path, err)
	}
	reins, _ := data["reins"].(map[string]any)
	config, _ := reins["config"].(map[string]any)
	agents, ok := config["agents"].(map[string]any)
	if !ok {
		return fmt.Errorf("dev policy bundle %s: no object reins.config.agents to add the intake's agent %s to", path, agent)
	}
	agents[agent] = map[string]any{"namespaces": []string{namespace}, "nodes": false}
	out, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return fmt.Errorf("dev policy bundle: %w", err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("dev policy bundle: %w", err)
	}
	return nil
}

// printDevIntake tells how to send the dev intake an alert, by hand and
// from Alertmanager.
func printDevIntake(out io.Writer, cfg workers.Config, temporalAddress string) {
	base := "http://" + cfg.Gateway.Listen
	in := cfg.Intake
	opts := in.ConsumerOptions(nil).WithDefaults()
	subject, _ := intake.QueueSubject(opts.Subject, opts.QueueSubject)
	alert := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"reins","externalURL":"http://alertmanager.local",
        "alerts":[{"status":"firing","fingerprint":"dev-checkout-replicas","startsAt":"%s",
          "labels":{"alertname":%q,"namespace":%q,"deployment":%q,"severity":"warning"},
          "annotations":{"summary":"%s/%s has fewer ready replicas than desired"}}]}`,
		time.Now().UTC().Truncate(time.Second).Format(time.RFC3339), devTriggerAlert, devstack.SampleNamespace, devstack.SampleName, devstack.SampleNamespace, devstack.SampleName)
	fmt.Fprintf(out, "  Event intake: trigger %s takes alertname=%s, %s and scales that deployment to %d replicas.\n", devTrigger, devTriggerAlert, devTriggerLabels, devTriggerScale)
	fmt.Fprintf(out, "    Its events are queued on NATS %s (stream %s, subject %s) and started by the gateway's consumer. Post one:\n", opts.URL, opts.Stream, subject)
	fmt.Fprintf(out, "    curl -sS %s%s \\\n      -H \"Authorization: Bearer $(cat %s)\" -H 'Content-Type: application/json' \\\n      -d '%s'\n",
		base, gateway.PathAlertmanager, in.TokenFile, alert)
	devID := remediation.Plan{Incident: remediation.Incident{Source: devTrigger, Fingerprint: "dev-checkout-replicas"}}.WorkflowID()
	fmt.Fprintf(out, "    then: temporal workflow list --address %s (remediation %s)\n", temporalAddress, devID)
	fmt.Fprintf(out, "    Alertmanager (alertmanager.yml):\n")
	fmt.Fprintf(out, "      receivers:\n        - name: reins\n          webhook_configs:\n")
	fmt.Fprintf(out, "            - url: %s%s\n              http_config: {authorization: {credentials_file: %s}}\n", base, gateway.PathAlertmanager, in.TokenFile)
}
