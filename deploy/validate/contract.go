package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// metric is one exported series family from deploy/metrics.txt.
type metric struct {
	name   string
	typ    string // counter, gauge, histogram
	labels []string
}

// contract is deploy/metrics.txt: what the pipeline exports and the labels Prometheus adds.
type contract struct {
	metrics      map[string]metric
	targetLabels []string
}

func loadContract(path string) (*contract, error) {
	ls, err := lines(path)
	if err != nil {
		return nil, err
	}
	c := &contract{metrics: map[string]metric{}}
	for _, l := range ls {
		f := strings.Fields(l)
		if f[0] == "@target-labels" && len(f) == 2 {
			c.targetLabels = strings.Split(f[1], ",")
			continue
		}
		if len(f) != 3 || !slices.Contains([]string{"counter", "gauge", "histogram"}, f[1]) {
			return nil, fmt.Errorf("%s: bad line %q (want: name type labels)", path, l)
		}
		m := metric{name: f[0], typ: f[1]}
		if f[2] != "-" {
			m.labels = strings.Split(f[2], ",")
		}
		c.metrics[m.name] = m
	}
	if len(c.metrics) == 0 || len(c.targetLabels) == 0 {
		return nil, fmt.Errorf("%s: no metrics or no @target-labels line", path)
	}
	return c, nil
}

// lookup resolves a series name to its family: histograms expose _bucket, _sum and _count.
func (c *contract) lookup(name string) (metric, []string, bool) {
	if m, ok := c.metrics[name]; ok && m.typ != "histogram" {
		return m, m.labels, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if m, ok := c.metrics[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && m.typ == "histogram" {
			labels := m.labels
			if suffix == "_bucket" {
				labels = append(slices.Clone(labels), "le")
			}
			return m, labels, true
		}
	}
	return metric{}, nil, false
}

// checkExpr parses a PromQL expression and returns every problem: syntax, unknown metric names,
// label names a selector or a by/without clause uses that its metrics do not have, and
// rate/increase over gauges.
func (c *contract) checkExpr(p parser.Parser, expr string) (names []string, problems []string) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, []string{fmt.Sprintf("does not parse: %v", err)}
	}
	known := func(label string, have []string) bool {
		return slices.Contains(have, label) || slices.Contains(c.targetLabels, label)
	}
	// Labels available under a node: the union of the labels of the metrics it selects, plus
	// any label_replace targets (none used here).
	var labelsUnder func(n parser.Node) []string
	labelsUnder = func(n parser.Node) []string {
		var out []string
		parser.Inspect(n, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				if _, ls, ok := c.lookup(vs.Name); ok {
					out = append(out, ls...)
				}
			}
			return nil
		})
		return out
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			if n.Name == "" {
				problems = append(problems, fmt.Sprintf("selector %s has no metric name", n))
				return nil
			}
			names = append(names, n.Name)
			_, ls, ok := c.lookup(n.Name)
			if !ok {
				problems = append(problems, fmt.Sprintf("metric %s is not in deploy/metrics.txt", n.Name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != "__name__" && !known(m.Name, ls) {
					problems = append(problems, fmt.Sprintf("%s has no label %q", n.Name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			have := labelsUnder(n.Expr)
			for _, g := range n.Grouping {
				if !known(g, have) {
					problems = append(problems, fmt.Sprintf("%s by/without (%s): no selected metric has label %q", n.Op, strings.Join(n.Grouping, ", "), g))
				}
			}
		case *parser.Call:
			if slices.Contains([]string{"rate", "increase", "irate"}, n.Func.Name) {
				parser.Inspect(n, func(inner parser.Node, _ []parser.Node) error {
					if vs, ok := inner.(*parser.VectorSelector); ok {
						if m, _, ok := c.lookup(vs.Name); ok && m.typ == "gauge" {
							problems = append(problems, fmt.Sprintf("%s() over gauge %s", n.Func.Name, vs.Name))
						}
					}
					return nil
				})
			}
		}
		return nil
	})
	return names, problems
}

func newPromQLParser() parser.Parser {
	return parser.NewParser(parser.Options{})
}

// checkExporter compares deploy/metrics.txt with the exporter in src/: every listed family must
// be named there, as "kafka_pipeline_NAME" or as the bare "NAME" the exposition code prefixes.
// Before the exporter exists (no "kafka_pipeline_" in src/) this is only a notice.
func checkExporter(r *report, root string, c *contract) {
	r.start("metrics contract")
	src := sourceText(root)
	if !strings.Contains(src, "kafka_pipeline_") {
		fmt.Fprintf(r.out, "note [%s] src/ exports no kafka_pipeline_* metrics yet: deploy/metrics.txt not cross-checked\n", r.section)
		return
	}
	for name := range c.metrics {
		short, ok := strings.CutPrefix(name, "kafka_pipeline_")
		if !ok {
			continue // series Prometheus adds itself (up)
		}
		r.check(strings.Contains(src, name) || strings.Contains(src, `"`+short+`"`),
			"%s (deploy/metrics.txt) is exported by src/", name)
	}
}
