package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// manifest is one YAML document of deploy/k8s.
type manifest struct {
	file       string
	apiVersion string
	kind       string
	name       string
	raw        []byte
	obj        map[string]any
}

// crdSchema validates custom resources of one group/version/kind the way the API server does:
// OpenAPI v3 validation plus pruning, where a pruned field is an unknown field (kubectl's
// default --validate=strict rejects it).
type crdSchema struct {
	validator  validation.SchemaValidator
	structural *structuralschema.Structural
}

func loadCRDs(paths []string) (map[string]crdSchema, error) {
	out := map[string]crdSchema{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			validator, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			gvk := crd.Spec.Group + "/" + v.Name + "/" + crd.Spec.Names.Kind
			out[gvk] = crdSchema{validator: validator, structural: structural}
		}
	}
	return out, nil
}

func readManifests(dir string) ([]manifest, []string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var out []manifest
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", filepath.Base(f), err)
			}
			m := manifest{file: filepath.Base(f), raw: []byte(doc), obj: obj}
			m.apiVersion, _ = obj["apiVersion"].(string)
			m.kind, _ = obj["kind"].(string)
			if md, ok := obj["metadata"].(map[string]any); ok {
				m.name, _ = md["name"].(string)
			}
			out = append(out, m)
		}
	}
	return out, names, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// strict decodes a manifest into a typed object and rejects unknown or duplicate fields.
func strict(r *report, m manifest, into any) bool {
	if err := yaml.UnmarshalStrict(m.raw, into); err != nil {
		r.errorf("%s %s (%s): %v", m.kind, m.name, m.file, err)
		return false
	}
	r.ok("%s %s (%s) decodes strictly into %s", m.kind, m.name, m.file, m.apiVersion)
	return true
}

// checkKubernetes validates deploy/k8s: every document against its schema, then the wiring
// between the documents and the pipeline's own settings.
func checkKubernetes(r *report, root string, crdPaths []string, kafkaScalerSource string) {
	r.start("kubernetes")
	dir := filepath.Join(root, "deploy/k8s")
	docs, files, err := readManifests(dir)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	crds, err := loadCRDs(crdPaths)
	if err != nil {
		r.errorf("loading CRDs: %v", err)
		return
	}
	var (
		sts     *appsv1.StatefulSet
		svcs    = map[string]*corev1.Service{}
		cms     = map[string]*corev1.ConfigMap{}
		secrets = map[string]*corev1.Secret{}
		pdb     *policyv1.PodDisruptionBudget
		objs    = map[string]manifest{} // custom resources by kind
		kust    *manifest
	)
	for _, m := range docs {
		if md, ok := m.obj["metadata"].(map[string]any); ok {
			_, hasNS := md["namespace"]
			r.check(!hasNS, "%s %s: namespace-free (no metadata.namespace)", m.kind, m.name)
		}
		switch m.apiVersion + "/" + m.kind {
		case "apps/v1/StatefulSet":
			sts = &appsv1.StatefulSet{}
			if !strict(r, m, sts) {
				sts = nil
			}
		case "apps/v1/Deployment":
			r.errorf("Deployment %s (%s): run the pipeline as a StatefulSet (stable pod names are its static member ids and transactional ids)", m.name, m.file)
		case "v1/Service":
			svc := &corev1.Service{}
			if strict(r, m, svc) {
				svcs[svc.Name] = svc
			}
		case "v1/ConfigMap":
			cm := &corev1.ConfigMap{}
			if strict(r, m, cm) {
				cms[cm.Name] = cm
			}
		case "v1/Secret":
			s := &corev1.Secret{}
			if strict(r, m, s) {
				secrets[s.Name] = s
			}
		case "policy/v1/PodDisruptionBudget":
			pdb = &policyv1.PodDisruptionBudget{}
			if !strict(r, m, pdb) {
				pdb = nil
			}
		case "kustomize.config.k8s.io/v1beta1/Kustomization":
			mm := m
			kust = &mm
		default:
			s, ok := crds[m.apiVersion+"/"+m.kind]
			if !ok {
				r.errorf("%s %s (%s): no schema for %s", m.kind, m.name, m.file, m.apiVersion)
				continue
			}
			validateCustomResource(r, m, s)
			objs[m.kind] = m
		}
	}
	if kust != nil {
		checkKustomization(r, *kust, files)
	} else {
		r.errorf("no kustomization.yaml")
	}
	if sts == nil {
		r.errorf("no valid StatefulSet")
		return
	}
	cm := cms["kafka-pipeline"]
	if cm == nil {
		r.errorf("no ConfigMap kafka-pipeline")
		return
	}
	checkStatefulSet(r, root, sts, cm, secrets, svcs)
	if pdb != nil {
		r.check(selects(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Labels), "PodDisruptionBudget selects the StatefulSet's pods")
		r.check(pdb.Spec.MaxUnavailable != nil || pdb.Spec.MinAvailable != nil, "PodDisruptionBudget sets maxUnavailable or minAvailable")
	} else {
		r.errorf("no PodDisruptionBudget")
	}
	if pm, ok := objs["PodMonitor"]; ok {
		spec := pm.obj["spec"].(map[string]any)
		sel := toStringMap(dig(spec, "selector", "matchLabels"))
		r.check(selects(sel, sts.Spec.Template.Labels), "PodMonitor selects the StatefulSet's pods")
		ports := []string{}
		for _, e := range spec["podMetricsEndpoints"].([]any) {
			ports = append(ports, fmt.Sprint(e.(map[string]any)["port"]))
		}
		r.check(slices.Contains(ports, "metrics") && hasPortNamed(sts, "metrics"), "PodMonitor scrapes the container port named metrics")
		r.check(spec["jobLabel"] == "app.kubernetes.io/name" && sts.Spec.Template.Labels["app.kubernetes.io/name"] == "kafka-pipeline",
			"PodMonitor's job label is kafka-pipeline (what the alerts' up{job=...} expects)")
	}
	checkKeda(r, objs, sts, cm, secrets, kafkaScalerSource)
}

func validateCustomResource(r *report, m manifest, s crdSchema) {
	errs := validation.ValidateCustomResource(field.NewPath(""), m.obj, s.validator)
	for _, e := range errs {
		r.errorf("%s %s (%s): %v", m.kind, m.name, m.file, e)
	}
	// Pruning on a copy: whatever the API server would drop is a field the CRD does not know.
	var copyObj map[string]any
	_ = yaml.Unmarshal(m.raw, &copyObj)
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	unknown := pruning.PruneWithOptions(copyObj, s.structural, true, opts)
	for _, u := range unknown {
		r.errorf("%s %s (%s): unknown field %s", m.kind, m.name, m.file, u)
	}
	if len(errs) == 0 && len(unknown) == 0 {
		r.ok("%s %s (%s) is valid against the %s CRD schema (no unknown fields)", m.kind, m.name, m.file, m.apiVersion)
	}
}

func checkKustomization(r *report, m manifest, files []string) {
	res, _ := m.obj["resources"].([]any)
	listed := map[string]bool{}
	for _, x := range res {
		s := fmt.Sprint(x)
		listed[s] = true
		r.check(slices.Contains(files, s), "kustomization resource %s exists", s)
	}
	for _, f := range files {
		if f != "kustomization.yaml" {
			r.check(listed[f], "%s is listed in kustomization.yaml", f)
		}
	}
	_, hasNS := m.obj["namespace"]
	r.check(!hasNS, "kustomization sets no namespace (apply with -n)")
}

// knownEnv returns the KAFKA_PIPELINE_* names the binary reads (clap `env = "..."` in src/).
func knownEnv(root string) map[string]bool {
	out := map[string]bool{}
	re := regexp.MustCompile(`env\s*=\s*"(KAFKA_PIPELINE_[A-Z0-9_]+)"`)
	for _, m := range re.FindAllStringSubmatch(sourceText(root), -1) {
		out[m[1]] = true
	}
	return out
}

// pendingEnv are the environment twins of issue 6's new flags, agreed with the ops part of the
// issue, each with the text that shows the flag exists in src/. Before the flag is there, the
// name is accepted with a notice; once it is, the name must be the flag's twin.
var pendingEnv = map[string]string{
	"KAFKA_PIPELINE_METRICS_ADDR": "metrics_addr",
	"KAFKA_PIPELINE_LOG_FORMAT":   "log_format",
}

func isPending(root, name string) bool {
	marker, ok := pendingEnv[name]
	return ok && !strings.Contains(sourceText(root), marker)
}

// sourceText is all of src/**/*.rs, concatenated.
func sourceText(root string) string {
	var b strings.Builder
	_ = filepath.Walk(filepath.Join(root, "src"), func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, ".rs") {
			t, _ := os.ReadFile(path)
			b.Write(t)
		}
		return nil
	})
	return b.String()
}

func checkEnvName(r *report, root string, known map[string]bool, name, where string) {
	if !strings.HasPrefix(name, "KAFKA_PIPELINE_") {
		return
	}
	switch {
	case known[name]:
		r.ok("%s: %s is a flag's environment twin in src/", where, name)
	case isPending(root, name):
		fmt.Fprintf(r.out, "note [%s] %s: %s is not in src/ yet (issue 6's new flags)\n", r.section, where, name)
	default:
		r.errorf("%s: %s is not read by kafka-pipeline (no env = %q in src/)", where, name, name)
	}
}

func checkStatefulSet(r *report, root string, sts *appsv1.StatefulSet, cm *corev1.ConfigMap, secrets map[string]*corev1.Secret, svcs map[string]*corev1.Service) {
	spec := sts.Spec.Template.Spec
	r.check(sts.Spec.Selector != nil && selects(sts.Spec.Selector.MatchLabels, sts.Spec.Template.Labels),
		"StatefulSet selector matches its pod template labels")
	r.check(sts.Spec.Replicas == nil, "StatefulSet leaves replicas to the autoscaler")
	r.check(sts.Spec.PodManagementPolicy == appsv1.ParallelPodManagement,
		"podManagementPolicy Parallel (members do not wait for one another; got %q)", sts.Spec.PodManagementPolicy)
	us := sts.Spec.UpdateStrategy
	r.check(us.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		(us.RollingUpdate == nil || us.RollingUpdate.Partition == nil || *us.RollingUpdate.Partition == 0),
		"updateStrategy RollingUpdate over every pod (partition 0; got type %q)", us.Type)
	r.check(len(sts.Spec.VolumeClaimTemplates) == 0, "no volumeClaimTemplates: the pipeline keeps no state on disk")
	if sts.Spec.ServiceName != "" {
		svc := svcs[sts.Spec.ServiceName]
		r.check(svc != nil && svc.Spec.ClusterIP == corev1.ClusterIPNone && selects(svc.Spec.Selector, sts.Spec.Template.Labels),
			"serviceName %s is a headless Service selecting the pods", sts.Spec.ServiceName)
	}
	r.check(len(spec.Containers) == 1, "one container")
	if len(spec.Containers) == 0 {
		return
	}
	c := spec.Containers[0]
	known := knownEnv(root)
	for k := range cm.Data {
		checkEnvName(r, root, known, k, "ConfigMap "+cm.Name)
	}
	for _, e := range c.Env {
		checkEnvName(r, root, known, e.Name, "container env")
	}

	// The instance id is the static member id (group.instance.id) and part of the
	// transactional.id: it must be the pod's own stable name, never one value for all pods.
	_, inCM := cm.Data["KAFKA_PIPELINE_INSTANCE_ID"]
	r.check(!inCM, "ConfigMap sets no KAFKA_PIPELINE_INSTANCE_ID (one value for every pod: a shared static member id and transactional.id)")
	fromName := false
	for _, e := range c.Env {
		if e.Name == "KAFKA_PIPELINE_INSTANCE_ID" {
			fromName = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}
	}
	r.check(fromName, "KAFKA_PIPELINE_INSTANCE_ID comes from the pod's metadata.name (stable in a StatefulSet)")

	// Ports and probes against --metrics-addr.
	addr := cm.Data["KAFKA_PIPELINE_METRICS_ADDR"]
	r.check(addr == "0.0.0.0:9898", "metrics listen on 0.0.0.0:9898 in the pod (ConfigMap KAFKA_PIPELINE_METRICS_ADDR=%q)", addr)
	r.check(hasPortNamed(sts, "metrics") && c.Ports[0].ContainerPort == 9898, "container port metrics is 9898")
	probe := func(name string, p *corev1.Probe, path string) {
		ok := p != nil && p.HTTPGet != nil && p.HTTPGet.Path == path && p.HTTPGet.Port.String() == "metrics"
		r.check(ok, "%s probe: GET %s on port metrics", name, path)
	}
	probe("liveness", c.LivenessProbe, "/health")
	probe("readiness", c.ReadinessProbe, "/ready")
	probe("startup", c.StartupProbe, "/health")

	// Termination budget: grace > preStop + --shutdown-timeout.
	shutdown := 30 * time.Second
	if s, ok := cm.Data["KAFKA_PIPELINE_SHUTDOWN_TIMEOUT"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			r.errorf("KAFKA_PIPELINE_SHUTDOWN_TIMEOUT %q: %v", s, err)
		}
		shutdown = d
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	r.check(preStop > 0, "preStop sleep set (%s)", preStop)
	grace := time.Duration(0)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	r.check(grace >= preStop+shutdown+5*time.Second,
		"terminationGracePeriodSeconds %s >= preStop %s + shutdown timeout %s + 5s margin", grace, preStop, shutdown)

	// Resources and security.
	req, lim := c.Resources.Requests, c.Resources.Limits
	r.check(!req.Cpu().IsZero() && !req.Memory().IsZero() && !lim.Memory().IsZero(), "cpu and memory requests and a memory limit are set")
	r.check(req.Memory().Cmp(*lim.Memory()) <= 0, "memory request <= limit")
	r.check(req.Memory().Value() >= 180<<20, "memory request %s >= the measured peak RSS (180 MB, scripts/bench.sh)", req.Memory())
	workers := cm.Data["KAFKA_PIPELINE_WORKERS"]
	r.check(workers != "", "KAFKA_PIPELINE_WORKERS is set explicitly (default = cores the process sees)")
	psc, csc := spec.SecurityContext, c.SecurityContext
	r.check(psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && psc.RunAsUser != nil && *psc.RunAsUser != 0, "pod runs as a non-root uid")
	r.check(csc != nil && csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem, "read-only root filesystem")
	r.check(csc != nil && csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation, "no privilege escalation")
	r.check(csc != nil && csc.Capabilities != nil && slices.Contains(csc.Capabilities.Drop, "ALL"), "all capabilities dropped")
	dockerUser := dockerfileUser(root)
	r.check(psc != nil && psc.RunAsUser != nil && fmt.Sprint(*psc.RunAsUser) == strings.SplitN(dockerUser, ":", 2)[0],
		"runAsUser matches the Dockerfile's USER (%s)", dockerUser)

	// References: ConfigMap, Secret keys, $(VAR) expansion order.
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			r.check(ef.ConfigMapRef.Name == cm.Name, "envFrom ConfigMap %s exists", ef.ConfigMapRef.Name)
		}
	}
	defined := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			s := secrets[ref.Name]
			r.check(s != nil && hasKey(s, ref.Key), "env %s: Secret %s has key %s", e.Name, ref.Name, ref.Key)
		}
		for _, v := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(e.Value, -1) {
			r.check(defined[v[1]], "env %s: $(%s) is defined before it", e.Name, v[1])
		}
		defined[e.Name] = true
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			s := secrets[v.Secret.SecretName]
			for _, it := range v.Secret.Items {
				r.check(s != nil && hasKey(s, it.Key), "volume %s: Secret %s has key %s", v.Name, v.Secret.SecretName, it.Key)
			}
		}
	}
	props := propertiesOf(sts)
	if loc := props["ssl.ca.location"]; loc != "" {
		mounted := false
		for _, vm := range c.VolumeMounts {
			if strings.HasPrefix(loc, vm.MountPath+"/") {
				mounted = true
			}
		}
		r.check(mounted, "ssl.ca.location %s is inside a mounted volume", loc)
	}
	r.check(!strings.Contains(strings.Join(c.Args, " "), "password"), "no credentials in container args")
}

// propertiesOf parses KAFKA_PIPELINE_PROPERTIES (key=value;...) from the container's env.
func propertiesOf(sts *appsv1.StatefulSet) map[string]string {
	out := map[string]string{}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "KAFKA_PIPELINE_PROPERTIES" {
			for _, kv := range strings.Split(e.Value, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
					out[k] = v
				}
			}
		}
	}
	return out
}

// kedaParams reads the Kafka scaler's parameter names from its source: struct tags like
// `keda:"name=lagThreshold,order=triggerMetadata,...,enum=a;b"`.
func kedaParams(path string) (trigger, auth map[string][]string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	trigger, auth = map[string][]string{}, map[string][]string{}
	re := regexp.MustCompile("keda:\"name=([A-Za-z]+),order=([A-Za-z;]+)([^\"]*)\"")
	for _, m := range re.FindAllSubmatch(b, -1) {
		var enum []string
		if i := bytes.Index(m[3], []byte("enum=")); i >= 0 {
			enum = strings.Split(strings.SplitN(string(m[3][i+5:]), ",", 2)[0], ";")
		}
		order := string(m[2])
		if strings.Contains(order, "triggerMetadata") {
			trigger[string(m[1])] = enum
		}
		if strings.Contains(order, "authParams") {
			auth[string(m[1])] = enum
		}
	}
	if len(trigger) < 5 {
		return nil, nil, fmt.Errorf("%s: found only %d trigger parameters; has the scaler's source changed?", path, len(trigger))
	}
	return trigger, auth, nil
}

func checkKeda(r *report, objs map[string]manifest, sts *appsv1.StatefulSet, cm *corev1.ConfigMap, secrets map[string]*corev1.Secret, scalerSource string) {
	so, ok := objs["ScaledObject"]
	if !ok {
		r.errorf("no KEDA ScaledObject")
		return
	}
	trigParams, authParams, err := kedaParams(scalerSource)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	spec := so.obj["spec"].(map[string]any)
	ref := spec["scaleTargetRef"].(map[string]any)
	// KEDA defaults a missing kind to Deployment: it must say StatefulSet.
	r.check(ref["name"] == sts.Name && ref["kind"] == "StatefulSet" && ref["apiVersion"] == "apps/v1",
		"ScaledObject targets StatefulSet %s (apps/v1, kind explicit)", sts.Name)
	minR, _ := spec["minReplicaCount"].(float64)
	maxR, _ := spec["maxReplicaCount"].(float64)
	r.check(minR >= 1 && maxR >= minR, "1 <= minReplicaCount (%v) <= maxReplicaCount (%v)", minR, maxR)
	triggers, _ := spec["triggers"].([]any)
	r.check(len(triggers) == 1, "one trigger")
	props := propertiesOf(sts)
	commitInterval := time.Second
	if s, ok := cm.Data["KAFKA_PIPELINE_COMMIT_INTERVAL"]; ok {
		if d, err := time.ParseDuration(s); err == nil {
			commitInterval = d
		} else {
			r.errorf("KAFKA_PIPELINE_COMMIT_INTERVAL %q: %v", s, err)
		}
	}
	for _, t := range triggers {
		tm := t.(map[string]any)
		r.check(tm["type"] == "kafka", "trigger type kafka")
		md := toStringMap(tm["metadata"])
		for _, k := range slices.Sorted(maps.Keys(md)) {
			enum, known := trigParams[k]
			r.check(known, "kafka trigger parameter %s is one KEDA's Kafka scaler reads", k)
			if len(enum) > 0 {
				r.check(slices.Contains(enum, md[k]), "kafka trigger %s=%q is one of %v", k, md[k], enum)
			}
		}
		r.check(md["consumerGroup"] == cm.Data["KAFKA_PIPELINE_GROUP_ID"], "trigger consumerGroup = the pipeline's group id (%s)", md["consumerGroup"])
		r.check(md["topic"] == cm.Data["KAFKA_PIPELINE_INPUT_TOPIC"], "trigger topic = the pipeline's input topic (%s)", md["topic"])
		r.check(md["bootstrapServers"] == cm.Data["KAFKA_PIPELINE_BROKERS"], "trigger bootstrapServers = the pipeline's brokers")
		r.check(md["offsetResetPolicy"] == "earliest", "offsetResetPolicy earliest, like the pipeline's auto.offset.reset")
		var threshold float64
		fmt.Sscan(md["lagThreshold"], &threshold)
		// A healthy replica's committed position trails its input by up to two commit epochs,
		// so KEDA adds a replica per threshold / (2 intervals) events/s. Held to 2-50 % of the
		// lower end of one replica's measured throughput (scripts/bench.sh): below, the
		// structural lag alone keeps KEDA at maxReplicaCount; above, a replica is past half its
		// throughput before KEDA adds one.
		const replicaEventsPerSecond = 250000
		perReplica := threshold / (2 * commitInterval.Seconds())
		r.check(perReplica >= 0.02*replicaEventsPerSecond && perReplica <= 0.5*replicaEventsPerSecond,
			"lagThreshold %.0f = 2 commit intervals (%s) of %.0f events/s per replica, within 2-50 %% of the measured %d events/s",
			threshold, commitInterval, perReplica, replicaEventsPerSecond)
		// TLS/SASL agree with what the pipeline itself uses.
		proto := props["security.protocol"]
		wantTLS := "disable"
		if strings.HasSuffix(proto, "SSL") {
			wantTLS = "enable"
		}
		r.check(md["tls"] == wantTLS || (md["tls"] == "" && wantTLS == "disable"), "trigger tls=%q matches security.protocol %q", md["tls"], proto)
		// librdkafka's sasl.mechanism names vs KEDA's sasl parameter values.
		mech := map[string]string{"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512",
			"GSSAPI": "gssapi", "OAUTHBEARER": "oauthbearer"}[props["sasl.mechanism"]]
		if strings.HasPrefix(proto, "SASL") {
			r.check(md["sasl"] == mech, "trigger sasl=%q matches sasl.mechanism %q", md["sasl"], props["sasl.mechanism"])
		}
		if ar, ok := tm["authenticationRef"].(map[string]any); ok {
			ta, ok := objs["TriggerAuthentication"]
			r.check(ok && ta.name == ar["name"], "authenticationRef %v names a TriggerAuthentication", ar["name"])
			if ok {
				for _, x := range dig(ta.obj, "spec", "secretTargetRef").([]any) {
					st := toStringMap(x)
					_, known := authParams[st["parameter"]]
					r.check(known, "TriggerAuthentication parameter %s is one the Kafka scaler reads", st["parameter"])
					s := secrets[st["name"]]
					r.check(s != nil && hasKey(s, st["key"]), "TriggerAuthentication %s: Secret %s has key %s", st["parameter"], st["name"], st["key"])
				}
			}
		}
	}
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func hasPortNamed(sts *appsv1.StatefulSet, name string) bool {
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func hasKey(s *corev1.Secret, key string) bool {
	_, a := s.Data[key]
	_, b := s.StringData[key]
	return a || b
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func toStringMap(x any) map[string]string {
	out := map[string]string{}
	if m, ok := x.(map[string]any); ok {
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
