package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// No Terraform binary and no provider runs here: deploy/terraform is checked with HashiCorp's
// HCL library (the parser and formatter Terraform itself uses), variable defaults and locals are
// evaluated with HCL's expression engine and go-cty's standard functions (Terraform's own for
// the ones used), and the workload module's kustomize overlay is rendered with kustomize's
// library, as the kbst/kustomization provider renders it. What is checked is the contract with
// the binary (src/) and deploy/k8s.

// tfModule is one folder of .tf files.
type tfModule struct {
	dir    string
	path   string // path.module: relative to the root module, where Terraform runs
	files  map[string][]byte
	bodies []*hclsyntax.Body
}

func (m *tfModule) blocks(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.bodies {
		for _, blk := range b.Blocks {
			if blk.Type == typ && (len(labels) == 0 || slices.Equal(blk.Labels[:min(len(labels), len(blk.Labels))], labels)) {
				out = append(out, blk)
			}
		}
	}
	return out
}

func (m *tfModule) block(typ string, labels ...string) *hclsyntax.Block {
	if b := m.blocks(typ, labels...); len(b) == 1 {
		return b[0]
	}
	return nil
}

// text is an expression's source text.
func (m *tfModule) text(e hcl.Expression) string {
	r := e.Range()
	src := m.files[r.Filename]
	if src == nil || r.End.Byte > len(src) {
		return ""
	}
	return string(src[r.Start.Byte:r.End.Byte])
}

// tfFunctions are the Terraform functions the modules' variables and locals use, from go-cty's
// standard library (which Terraform's own are built on).
var tfFunctions = map[string]function.Function{
	"concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc, "distinct": stdlib.DistinctFunc,
	"flatten": stdlib.FlattenFunc, "format": stdlib.FormatFunc, "join": stdlib.JoinFunc,
	"jsonencode": stdlib.JSONEncodeFunc, "keys": stdlib.KeysFunc, "length": stdlib.LengthFunc,
	"lower": stdlib.LowerFunc, "max": stdlib.MaxFunc, "merge": stdlib.MergeFunc, "min": stdlib.MinFunc,
	"setproduct": stdlib.SetProductFunc, "sort": stdlib.SortFunc, "split": stdlib.SplitFunc,
	"upper": stdlib.UpperFunc, "values": stdlib.ValuesFunc,
	"tostring": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return convert.Convert(args[0], cty.String)
		},
	}),
}

// scope evaluates a module's expressions: var (defaults, overridden), local (as far as they
// evaluate without resources) and path.module.
type scope struct {
	m      *tfModule
	vars   map[string]cty.Value
	locals map[string]cty.Value
}

func (s *scope) ctx() *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   cty.ObjectVal(s.vars),
			"local": cty.ObjectVal(s.locals),
			"path":  cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(s.m.path)}),
		},
		Functions: tfFunctions,
	}
}

// eval evaluates e; ok only when it evaluates to a wholly known value.
func (s *scope) eval(e hcl.Expression) (cty.Value, bool) {
	v, diags := e.Value(s.ctx())
	return v, !diags.HasErrors() && v.IsWhollyKnown()
}

// newScope: the variables' defaults (a variable without one is unknown) with overrides, then
// the locals, evaluated until no more evaluate.
func newScope(m *tfModule, overrides map[string]cty.Value) *scope {
	s := &scope{m: m, vars: map[string]cty.Value{}, locals: map[string]cty.Value{}}
	for _, b := range m.blocks("variable") {
		s.vars[b.Labels[0]] = cty.DynamicVal
		if d, ok := b.Body.Attributes["default"]; ok {
			if v, diags := d.Expr.Value(nil); !diags.HasErrors() {
				s.vars[b.Labels[0]] = v
			}
		}
	}
	for k, v := range overrides {
		s.vars[k] = v
	}
	for progress := true; progress; {
		progress = false
		for _, b := range m.blocks("locals") {
			for name, a := range b.Body.Attributes {
				if _, done := s.locals[name]; done {
					continue
				}
				if v, ok := s.eval(a.Expr); ok {
					s.locals[name] = v
					progress = true
				}
			}
		}
	}
	return s
}

// goValue turns a cty value into plain Go values (maps, slices, float64, string, bool).
func goValue(v cty.Value) any {
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func loadTfModule(r *report, root, tfRoot, dir string) *tfModule {
	path, _ := filepath.Rel(tfRoot, dir)
	m := &tfModule{dir: dir, path: path, files: map[string][]byte{}}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		name := rel(root, p)
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			r.errorf("%s does not parse: %s", name, diags.Error())
			continue
		}
		m.files[name] = src
		m.bodies = append(m.bodies, f.Body.(*hclsyntax.Body))
	}
	return m
}

// binaryDefaults maps each KAFKA_PIPELINE_* twin to its flag's default_value in src/.
func binaryDefaults(root string) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`env\s*=\s*"(KAFKA_PIPELINE_[A-Z0-9_]+)",\s*default_value\s*=\s*"([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(sourceText(root), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// minInsyncReplicas is `kafka-pipeline topics`' rule (src/commands/topics.rs).
func minInsyncReplicas(rf int) int { return max(1, min(2, rf-1)) }

// librdkafka's default message.max.bytes: the largest batch the pipeline's producer builds.
const producerMessageMaxBytes = 1000000

var topicRoles = []struct{ role, env string }{
	{"input", "KAFKA_PIPELINE_INPUT_TOPIC"},
	{"output", "KAFKA_PIPELINE_OUTPUT_TOPIC"},
	{"dlq", "KAFKA_PIPELINE_DLQ_TOPIC"},
	{"insights", "KAFKA_PIPELINE_INSIGHTS_TOPIC"},
}

// checkTerraform checks deploy/terraform: every file parses and is formatted, the defaults
// satisfy the variables' own validations, and the topics, partitions, replication, ports and
// environment variables agree with the binary and deploy/k8s.
func checkTerraform(r *report, root string) {
	r.start("terraform")
	tfRoot := filepath.Join(root, "deploy/terraform")
	var files []string
	_ = filepath.Walk(tfRoot, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && (strings.HasSuffix(p, ".tf") || strings.HasSuffix(p, ".tfvars.example")) {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		r.errorf("no .tf files under deploy/terraform")
		return
	}
	known := knownEnv(root)
	envRe := regexp.MustCompile(`KAFKA_PIPELINE_[A-Z0-9_]+`)
	for _, p := range files {
		src, _ := os.ReadFile(p)
		name := rel(root, p)
		if _, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos); diags.HasErrors() {
			r.errorf("%s does not parse: %s", name, diags.Error())
			continue
		}
		r.ok("%s parses (HCL)", name)
		formatted := hclwrite.Format(src)
		if !bytes.Equal(formatted, src) {
			r.errorf("%s is not formatted as terraform fmt formats it (first difference at line %d)", name, firstDiffLine(src, formatted))
		} else {
			r.ok("%s is formatted (terraform fmt)", name)
		}
		seen := map[string]bool{}
		for _, env := range envRe.FindAllString(string(src), -1) {
			if !seen[env] {
				seen[env] = true
				r.check(known[env] || isPending(root, env), "%s: %s is read by kafka-pipeline (env = %q in src/)", name, env, env)
			}
		}
	}
	rootMod := loadTfModule(r, root, tfRoot, tfRoot)
	msk := loadTfModule(r, root, tfRoot, filepath.Join(tfRoot, "modules/msk"))
	topics := loadTfModule(r, root, tfRoot, filepath.Join(tfRoot, "modules/topics"))
	workload := loadTfModule(r, root, tfRoot, filepath.Join(tfRoot, "modules/workload"))
	for _, m := range []*tfModule{rootMod, msk, topics, workload} {
		checkValidations(r, root, m)
	}

	docs, _, err := readManifests(filepath.Join(root, "deploy/k8s"))
	if err != nil {
		r.errorf("%v", err)
		return
	}
	k8s := map[string]manifest{}
	for _, d := range docs {
		k8s[d.kind] = d
	}
	cm := toStringMap(dig(k8s["ConfigMap"].obj, "data"))
	so, _ := k8s["ScaledObject"].obj["spec"].(map[string]any)
	maxReplicas, _ := so["maxReplicaCount"].(float64)
	minReplicas, _ := so["minReplicaCount"].(float64)
	defaults := binaryDefaults(root)

	checkTfTopics(r, root, newScope(topics, nil), topics, defaults, cm, int(maxReplicas))
	checkTfMsk(r, root, newScope(msk, nil), msk, k8s)
	checkTfWorkload(r, root, tfRoot, workload, defaults, cm, k8s, int(minReplicas), int(maxReplicas), known)
	checkTfRoot(r, newScope(rootMod, nil), rootMod, newScope(topics, nil), newScope(workload, nil))
}

func firstDiffLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// checkValidations evaluates every variable's validation conditions on its default: the
// defaults a plan would run with pass the module's own checks.
func checkValidations(r *report, root string, m *tfModule) {
	s := newScope(m, nil)
	for _, b := range m.blocks("variable") {
		if s.vars[b.Labels[0]] == cty.DynamicVal {
			continue
		}
		for _, v := range b.Body.Blocks {
			if v.Type != "validation" {
				continue
			}
			cond, ok := s.eval(v.Body.Attributes["condition"].Expr)
			r.check(ok && cond.Type() == cty.Bool && cond.True(), "%s: the default of var.%s passes its validation %s",
				rel(root, m.dir), b.Labels[0], m.text(v.Body.Attributes["condition"].Expr))
		}
	}
}

func checkTfTopics(r *report, root string, s *scope, m *tfModule, defaults, cm map[string]string, maxReplicas int) {
	vars := goValue(cty.ObjectVal(s.vars)).(map[string]any)
	topicVar, _ := vars["topics"].(map[string]any)
	for _, t := range topicRoles {
		name, _ := dig(topicVar, t.role, "name").(string)
		r.check(name != "" && name == defaults[t.env] && name == cm[t.env],
			"modules/topics: %s topic %q is the binary's default %s (%q) and deploy/k8s's (%q)", t.role, name, t.env, defaults[t.env], cm[t.env])
	}
	partitions, _ := vars["partitions"].(float64)
	r.check(int(partitions) == maxReplicas,
		"modules/topics: partitions %v = KEDA maxReplicaCount %d in deploy/k8s (one instance per input partition)", partitions, maxReplicas)
	rf, _ := vars["replication_factor"].(float64)
	r.check(rf >= 3, "modules/topics: replication factor %v >= 3 (production: three brokers)", rf)
	r.check(strings.Contains(sourceText(root), "(replication_factor - 1).clamp(1, 2)"),
		"the binary's min.insync.replicas rule is still min(2, rf - 1), at least 1 (src/commands/topics.rs), as modules/topics and modules/msk compute it")
	isr, ok := s.locals["min_insync_replicas"]
	r.check(ok && goValue(isr) == float64(minInsyncReplicas(int(rf))),
		"modules/topics: local.min_insync_replicas = %d for replication factor %v", minInsyncReplicas(int(rf)), rf)

	tv, ok := s.locals["topics"]
	if !ok {
		r.errorf("modules/topics: local.topics does not evaluate")
		return
	}
	ts := goValue(tv).(map[string]any)
	maxBytes := map[string]float64{}
	for _, t := range topicRoles {
		cfg, _ := dig(ts, t.role, "config").(map[string]any)
		var mb float64
		fmt.Sscan(fmt.Sprint(cfg["max.message.bytes"]), &mb)
		maxBytes[t.role] = mb
		r.check(dig(ts, t.role, "partitions") == partitions && dig(ts, t.role, "replication_factor") == rf &&
			cfg["min.insync.replicas"] == fmt.Sprint(minInsyncReplicas(int(rf))),
			"modules/topics: %s has %v partitions, %v replicas, min.insync.replicas %d", t.role, partitions, rf, minInsyncReplicas(int(rf)))
		r.check(mb >= producerMessageMaxBytes,
			"modules/topics: %s max.message.bytes %.0f >= the producer's message.max.bytes %d (the broker takes every batch it builds)", t.role, mb, producerMessageMaxBytes)
	}
	r.check(maxBytes["dlq"] > maxBytes["input"],
		"modules/topics: dlq max.message.bytes %.0f > the input's %.0f (a record the input took is dead-lettered whole, with its headers)", maxBytes["dlq"], maxBytes["input"])

	res := m.block("resource", "kafka_topic", "pipeline")
	if res == nil {
		r.errorf("modules/topics: no resource kafka_topic.pipeline")
	} else {
		r.check(m.text(res.Body.Attributes["for_each"].Expr) == "local.topics", "modules/topics: kafka_topic.pipeline is one per local.topics")
		for _, a := range []string{"name", "partitions", "replication_factor", "config"} {
			attr := res.Body.Attributes[a]
			r.check(attr != nil && m.text(attr.Expr) == "each.value."+a, "modules/topics: kafka_topic.pipeline %s = each.value.%s", a, a)
		}
	}

	group, _ := vars["group_id"].(string)
	r.check(group == defaults["KAFKA_PIPELINE_GROUP_ID"] && group == cm["KAFKA_PIPELINE_GROUP_ID"],
		"modules/topics: group %q is the binary's default --group-id (%q) and deploy/k8s's", group, defaults["KAFKA_PIPELINE_GROUP_ID"])
	r.check(strings.Contains(sourceText(root), `format!("kafka-pipeline-{}-{}", config.group_id, config.instance_id)`),
		"the binary's transactional.id is still kafka-pipeline-<group>-<instance> (src/kafka/client.rs), the prefix modules/topics grants")

	// The ACLs, with and without exactly-once.
	for _, eos := range []bool{false, true} {
		s := newScope(m, map[string]cty.Value{"exactly_once": cty.BoolVal(eos)})
		av, ok := s.locals["acls"]
		if !ok {
			r.errorf("modules/topics: local.acls does not evaluate")
			return
		}
		acls := goValue(av).(map[string]any)
		want := []string{"Topic:" + dig(topicVar, "input", "name").(string) + ":Read", "Group:" + group + ":Read", "Group:" + group + ":Describe"}
		for _, t := range topicRoles {
			name := dig(topicVar, t.role, "name").(string)
			want = append(want, "Topic:"+name+":Describe")
			if t.role != "input" {
				want = append(want, "Topic:"+name+":Write")
			}
		}
		if eos {
			want = append(want, "TransactionalID:kafka-pipeline-"+group+"-:Write", "TransactionalID:kafka-pipeline-"+group+"-:Describe")
		}
		var have []string
		for k, g := range acls {
			have = append(have, k)
			if strings.HasPrefix(k, "TransactionalID:") {
				r.check(dig(g.(map[string]any), "pattern") == "Prefixed", "modules/topics: ACL %s is a prefix", k)
			}
		}
		sort.Strings(have)
		sort.Strings(want)
		r.check(slices.Equal(have, want), "modules/topics: ACLs (exactly_once=%v) are exactly what the pipeline and KEDA's scaler use: %v (have %v)", eos, want, have)
	}
}

func checkTfMsk(r *report, root string, s *scope, m *tfModule, k8s map[string]manifest) {
	c := m.block("resource", "aws_msk_cluster", "this")
	if c == nil {
		r.errorf("modules/msk: no resource aws_msk_cluster.this")
		return
	}
	n, ok := s.eval(c.Body.Attributes["number_of_broker_nodes"].Expr)
	r.check(ok && n.Equals(cty.NumberIntVal(3)).True(), "modules/msk: 3 brokers (number_of_broker_nodes %s)", m.text(c.Body.Attributes["number_of_broker_nodes"].Expr))
	sub := m.block("variable", "subnet_ids")
	r.check(sub != nil && strings.Contains(string(m.files[sub.Range().Filename]), "length(var.subnet_ids) == 3 && length(distinct(var.subnet_ids)) == 3"),
		"modules/msk: exactly three subnets, one broker per availability zone")
	nested := func(b *hclsyntax.Block, path ...string) *hclsyntax.Block {
		for _, p := range path {
			var next *hclsyntax.Block
			for _, x := range b.Body.Blocks {
				if x.Type == p {
					next = x
				}
			}
			if next == nil {
				return nil
			}
			b = next
		}
		return b
	}
	attr := func(b *hclsyntax.Block, name string) string {
		if b == nil || b.Body.Attributes[name] == nil {
			return ""
		}
		return m.text(b.Body.Attributes[name].Expr)
	}
	transit := nested(c, "encryption_info", "encryption_in_transit")
	r.check(attr(transit, "client_broker") == `"TLS"` && attr(transit, "in_cluster") == "true",
		"modules/msk: TLS between clients and brokers and among brokers")
	auth := nested(c, "client_authentication")
	r.check(attr(auth, "unauthenticated") == "false" && attr(nested(c, "client_authentication", "sasl"), "scram") == "true",
		"modules/msk: SASL/SCRAM on, unauthenticated access off")
	props := propertiesOf(statefulSet(k8s))
	r.check(props["security.protocol"] == "SASL_SSL" && props["sasl.mechanism"] == "SCRAM-SHA-512",
		"deploy/k8s connects with SASL_SSL and SCRAM-SHA-512, the only SCRAM MSK offers (got %s, %s)", props["security.protocol"], props["sasl.mechanism"])

	spv, ok := s.locals["server_properties"]
	if !ok {
		r.errorf("modules/msk: local.server_properties does not evaluate")
		return
	}
	sp := toStringMap(goValue(spv))
	r.check(sp["default.replication.factor"] == "3" && sp["min.insync.replicas"] == fmt.Sprint(minInsyncReplicas(3)),
		"modules/msk: default.replication.factor=3, min.insync.replicas=%d (got %q, %q)", minInsyncReplicas(3), sp["default.replication.factor"], sp["min.insync.replicas"])
	r.check(sp["offsets.topic.replication.factor"] == "3" && sp["transaction.state.log.replication.factor"] == "3" && sp["transaction.state.log.min.isr"] == "2",
		"modules/msk: the internal topics (offsets, transactions) replicated 3 times with 2 in sync")
	r.check(sp["auto.create.topics.enable"] == "false", "modules/msk: topics are created by modules/topics, not on first use")
	conf := m.block("resource", "aws_msk_configuration", "this")
	r.check(conf != nil && strings.Contains(attr(conf, "server_properties"), "local.server_properties"),
		"modules/msk: the configuration is local.server_properties")
	// MSK's client ports: SASL/SCRAM 9096, IAM 9098; the security group opens exactly those.
	sp2, _ := s.locals["scram_port"]
	ip, _ := s.locals["iam_port"]
	r.check(goValue(sp2) == float64(9096) && goValue(ip) == float64(9098), "modules/msk: client ports 9096 (SASL/SCRAM) and 9098 (IAM)")
	rule := m.block("resource", "aws_vpc_security_group_ingress_rule", "clients")
	r.check(rule != nil && strings.Contains(attr(rule, "for_each"), "local.client_ports"), "modules/msk: the security group opens local.client_ports")
	sasl := m.block("output", "bootstrap_brokers_sasl_scram")
	r.check(sasl != nil && attr(sasl, "value") == "aws_msk_cluster.this.bootstrap_brokers_sasl_scram", "modules/msk: output bootstrap_brokers_sasl_scram (port 9096)")
}

// statefulSet is the StatefulSet of deploy/k8s (with at least one container, so that a broken
// manifest reports failures instead of panicking).
func statefulSet(k8s map[string]manifest) *appsv1.StatefulSet {
	var sts appsv1.StatefulSet
	_ = yaml.Unmarshal(k8s["StatefulSet"].raw, &sts)
	if len(sts.Spec.Template.Spec.Containers) == 0 {
		sts.Spec.Template.Spec.Containers = []corev1.Container{{}}
	}
	return &sts
}

// checkTfWorkload renders the workload module's overlay of deploy/k8s with kustomize's library
// for given inputs and checks what it would apply.
func checkTfWorkload(r *report, root, tfRoot string, m *tfModule, defaults, cm map[string]string, k8s map[string]manifest, minReplicas, maxReplicas int, known map[string]bool) {
	s := newScope(m, nil)
	vars := goValue(cty.ObjectVal(map[string]cty.Value{
		"min_instances": s.vars["min_instances"], "max_instances": s.vars["max_instances"],
		"input_partitions": s.vars["input_partitions"], "topic_names": s.vars["topic_names"], "group_id": s.vars["group_id"],
	})).(map[string]any)
	r.check(vars["min_instances"] == float64(minReplicas) && vars["max_instances"] == float64(maxReplicas),
		"modules/workload: instances %v-%v by default, KEDA's minReplicaCount-maxReplicaCount in deploy/k8s (%d-%d)", vars["min_instances"], vars["max_instances"], minReplicas, maxReplicas)
	r.check(vars["input_partitions"] == float64(maxReplicas), "modules/workload: input_partitions defaults to the topics' partitions (%d)", maxReplicas)
	for _, t := range topicRoles {
		r.check(dig(vars, "topic_names", t.role) == defaults[t.env], "modules/workload: %s topic name defaults to the binary's %q", t.role, defaults[t.env])
	}
	r.check(vars["group_id"] == defaults["KAFKA_PIPELINE_GROUP_ID"], "modules/workload: group defaults to the binary's %q", defaults["KAFKA_PIPELINE_GROUP_ID"])

	mv, ok := s.locals["manifests"]
	r.check(ok && filepath.Join(tfRoot, mv.AsString()) == filepath.Join(root, "deploy/k8s"), "modules/workload: applies deploy/k8s")
	image, _, _ := strings.Cut(statefulSet(k8s).Spec.Template.Spec.Containers[0].Image, ":")
	overlay := m.block("data", "kustomization_overlay", "pipeline")
	if overlay == nil {
		r.errorf("modules/workload: no data.kustomization_overlay.pipeline")
		return
	}

	inputs := map[string]cty.Value{
		"brokers":          cty.StringVal("b-1.example.abc123.c2.kafka.eu-west-1.amazonaws.com:9096,b-2.example.abc123.c2.kafka.eu-west-1.amazonaws.com:9096"),
		"image_repository": cty.StringVal("registry.example.com/team/kafka-pipeline"),
		"image_tag":        cty.StringVal("9.8.7"),
		"sasl_username":    cty.StringVal("kafka-pipeline"),
		"sasl_password":    cty.StringVal("test-password"),
		"ca_pem":           cty.StringVal("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"),
	}
	s = newScope(m, inputs)
	cfgv, ok := s.locals["config"]
	if !ok {
		r.errorf("modules/workload: local.config does not evaluate")
		return
	}
	config := toStringMap(goValue(cfgv))
	for _, k := range slices.Sorted(maps.Keys(config)) {
		_, inCM := cm[k]
		r.check(known[k] && inCM, "modules/workload: ConfigMap entry %s is read by kafka-pipeline and in deploy/k8s/configmap.yaml", k)
	}
	r.check(config["KAFKA_PIPELINE_INSTANCE_ID"] == "", "modules/workload: sets no KAFKA_PIPELINE_INSTANCE_ID (each pod's own from its name)")
	if addr, ok := config["KAFKA_PIPELINE_METRICS_ADDR"]; ok {
		_, port, _ := net.SplitHostPort(addr)
		r.check(port == "9898", "modules/workload: metrics on the container port 9898 (%s)", addr)
	}

	for _, createSecret := range []bool{true, false} {
		in := map[string]cty.Value{"create_secret": cty.BoolVal(createSecret)}
		for k, v := range inputs {
			in[k] = v
		}
		s := newScope(m, in)
		for _, pre := range overlay.Body.Blocks {
			if pre.Type != "lifecycle" {
				continue
			}
			for _, p := range pre.Body.Blocks {
				v, ok := s.eval(p.Body.Attributes["condition"].Expr)
				r.check(ok && v.True(), "modules/workload: precondition %s holds for the defaults", m.text(p.Body.Attributes["condition"].Expr))
			}
		}
		objs, err := renderOverlay(s, overlay, tfRoot)
		if err != nil {
			r.errorf("modules/workload: kustomize build of the overlay (create_secret=%v): %v", createSecret, err)
			continue
		}
		want := 7
		if !createSecret {
			want = 6
		}
		r.check(len(objs) == want, "modules/workload: the overlay renders %d objects with create_secret=%v (got %d)", want, createSecret, len(objs))
		for _, o := range objs {
			r.check(dig(o, "metadata", "namespace") == goValue(s.vars["namespace"]), "modules/workload: %s in namespace %v", dig(o, "kind"), goValue(s.vars["namespace"]))
			switch dig(o, "kind") {
			case "StatefulSet":
				got := ""
				if cs, ok := dig(o, "spec", "template", "spec", "containers").([]any); ok && len(cs) > 0 {
					got, _ = cs[0].(map[string]any)["image"].(string)
				}
				r.check(got == "registry.example.com/team/kafka-pipeline:9.8.7",
					"modules/workload: the StatefulSet runs image_repository:image_tag (images name %q is deploy/k8s's image %q; got %q)", strings.Trim(blockAttrText(m, overlay, "images", "name"), `"`), image, got)
			case "ConfigMap":
				data := toStringMap(dig(o, "data"))
				r.check(data["KAFKA_PIPELINE_BROKERS"] == inputs["brokers"].AsString() && data["KAFKA_PIPELINE_WORKERS"] == cm["KAFKA_PIPELINE_WORKERS"],
					"modules/workload: ConfigMap has the brokers and keeps deploy/k8s's other entries")
			case "ScaledObject":
				md := toStringMap(dig(o, "spec", "triggers").([]any)[0].(map[string]any)["metadata"])
				r.check(fmt.Sprint(dig(o, "spec", "minReplicaCount")) == fmt.Sprint(minReplicas) && fmt.Sprint(dig(o, "spec", "maxReplicaCount")) == fmt.Sprint(maxReplicas),
					"modules/workload: ScaledObject min/max replicas = min_instances/max_instances (%v-%v)", dig(o, "spec", "minReplicaCount"), dig(o, "spec", "maxReplicaCount"))
				r.check(md["bootstrapServers"] == inputs["brokers"].AsString() && md["consumerGroup"] == defaults["KAFKA_PIPELINE_GROUP_ID"] && md["topic"] == defaults["KAFKA_PIPELINE_INPUT_TOPIC"],
					"modules/workload: KEDA's trigger watches the pipeline's brokers, group and input topic")
			case "Secret":
				sd := toStringMap(dig(o, "stringData"))
				r.check(sd["username"] == "kafka-pipeline" && sd["password"] == "test-password" && strings.HasPrefix(sd["ca.crt"], "-----BEGIN"),
					"modules/workload: the Secret has the given username, password and CA")
			}
		}
	}
}

func blockAttrText(m *tfModule, b *hclsyntax.Block, blockType, attr string) string {
	for _, x := range b.Body.Blocks {
		if x.Type == blockType && x.Body.Attributes[attr] != nil {
			return m.text(x.Body.Attributes[attr].Expr)
		}
	}
	return ""
}

// overlayFS is the disk with one more file: the kustomization the data source describes, in
// the folder Terraform runs in (the root module), where the kbst/kustomization provider puts
// its virtual Kustomization file too, so relative paths resolve as they do there.
type overlayFS struct {
	filesys.FileSystem
	path    string
	content []byte
}

func (o overlayFS) Exists(name string) bool { return name == o.path || o.FileSystem.Exists(name) }

func (o overlayFS) ReadFile(name string) ([]byte, error) {
	if name == o.path {
		return o.content, nil
	}
	return o.FileSystem.ReadFile(name)
}

// renderOverlay builds the kustomization that the data source describes (resources,
// namespace, images, patches) with kustomize's library.
func renderOverlay(s *scope, overlay *hclsyntax.Block, tfRoot string) ([]map[string]any, error) {
	val := func(e hcl.Expression) (any, error) {
		v, ok := s.eval(e)
		if !ok {
			return nil, fmt.Errorf("%s does not evaluate", s.m.text(e))
		}
		return goValue(v), nil
	}
	k := map[string]any{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
	for name, a := range overlay.Body.Attributes {
		v, err := val(a.Expr)
		if err != nil {
			return nil, err
		}
		switch name {
		case "resources", "namespace":
			k[name] = v
		case "kustomize_options":
		default:
			return nil, fmt.Errorf("attribute %s is not rendered by this check", name)
		}
	}
	var images, patches []any
	for _, b := range overlay.Body.Blocks {
		attrs := map[string]any{}
		for name, a := range b.Body.Attributes {
			v, err := val(a.Expr)
			if err != nil {
				return nil, err
			}
			attrs[name] = v
		}
		switch b.Type {
		case "images":
			images = append(images, map[string]any{"name": attrs["name"], "newName": attrs["new_name"], "newTag": attrs["new_tag"]})
		case "patches":
			patches = append(patches, map[string]any{"target": attrs["target"], "patch": attrs["patch"]})
		case "lifecycle":
		default:
			return nil, fmt.Errorf("block %s is not rendered by this check", b.Type)
		}
	}
	k["images"], k["patches"] = images, patches
	y, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	fs := overlayFS{FileSystem: filesys.MakeFsOnDisk(), path: filepath.Join(tfRoot, "kustomization.yaml"), content: y}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	res, err := krusty.MakeKustomizer(opts).Run(fs, tfRoot)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, o := range res.Resources() {
		m, err := o.Map()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// checkTfRoot: the root module wires the MSK outputs, the topics and the workload together
// with the same defaults as the modules.
func checkTfRoot(r *report, s *scope, m *tfModule, topics, workload *scope) {
	same := func(name string, in *scope, inName string) {
		a, b := goValue(s.vars[name]), goValue(in.vars[inName])
		r.check(a != nil && a == b, "root: var.%s default %v = the module's %v", name, a, b)
	}
	same("partitions", topics, "partitions")
	same("replication_factor", topics, "replication_factor")
	same("group_id", topics, "group_id")
	same("min_instances", workload, "min_instances")
	same("max_instances", workload, "max_instances")
	attr := func(b *hclsyntax.Block, name string) string {
		if b == nil || b.Body.Attributes[name] == nil {
			return ""
		}
		return m.text(b.Body.Attributes[name].Expr)
	}
	var pipelineBrokers, adminBrokers string
	for _, b := range m.blocks("locals") {
		if a := b.Body.Attributes["pipeline_brokers"]; a != nil {
			pipelineBrokers = m.text(a.Expr)
		}
		if a := b.Body.Attributes["admin_brokers"]; a != nil {
			adminBrokers = m.text(a.Expr)
		}
	}
	wl := m.block("module", "workload")
	r.check(attr(wl, "brokers") == "local.pipeline_brokers" && strings.Contains(pipelineBrokers, "bootstrap_brokers_sasl_scram"),
		"root: the pipeline connects to MSK's SASL/SCRAM listener (port 9096), as deploy/k8s's SCRAM-SHA-512 properties need")
	r.check(attr(wl, "input_partitions") == "module.topics.partitions" && attr(wl, "topic_names") == "module.topics.topic_names",
		"root: the workload gets the topics' names and partition count")
	kp := m.block("provider", "kafka")
	r.check(strings.Contains(adminBrokers, "bootstrap_brokers_sasl_iam") && strings.Contains(attr(kp, "sasl_mechanism"), `"aws-iam"`),
		"root: Terraform administers MSK over IAM (port 9098)")
}
