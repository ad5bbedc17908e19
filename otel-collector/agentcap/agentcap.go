// Package agentcap is the budgetwatch_agentcap processor: a cap on the number of distinct
// agent ids per source, like the budgetwatch library's max_agents.
//
// The collector's own components have no stateful cardinality limit (OTTL is stateless,
// deltatocumulative's max_streams drops data), so this small processor keeps, per source
// (the resource attribute `source_attribute`, default service.name), the first `max_agents`
// values of the datapoint attribute `attribute` it sees; any further value is rewritten to
// `overflow_value`. Nothing is dropped: the spend of the agents past the cap adds up under
// the overflow value once the series are aggregated. The set lives in memory: after a
// collector restart the first agents seen again are kept again (same order, same set, for a
// source that exports all its series on every push).
package agentcap

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"
)

// Config of the processor.
type Config struct {
	Attribute       string `mapstructure:"attribute"`
	SourceAttribute string `mapstructure:"source_attribute"`
	MaxAgents       int    `mapstructure:"max_agents"`
	OverflowValue   string `mapstructure:"overflow_value"`
	// Values never counted against the cap and never rewritten (e.g. _unassigned).
	Reserved []string `mapstructure:"reserved"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Attribute == "" || c.SourceAttribute == "" || c.OverflowValue == "" {
		return errors.New("attribute, source_attribute and overflow_value must be set")
	}
	if c.MaxAgents < 1 {
		return errors.New("max_agents must be at least 1")
	}
	return nil
}

// NewFactory returns the factory of the budgetwatch_agentcap processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType("budgetwatch_agentcap"),
		func() component.Config {
			return &Config{
				Attribute:       "gen_ai.agent.id",
				SourceAttribute: "service.name",
				MaxAgents:       2000,
				OverflowValue:   "_overflow",
				Reserved:        []string{"_unassigned", "_overflow"},
			}
		},
		processor.WithMetrics(create, component.StabilityLevelDevelopment),
	)
}

func create(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, errors.New("budgetwatch_agentcap: unexpected configuration type")
	}
	reserved := map[string]bool{c.OverflowValue: true}
	for _, r := range c.Reserved {
		reserved[r] = true
	}
	return &capper{cfg: c, next: next, log: set.Logger, reserved: reserved, seen: map[string]map[string]struct{}{}}, nil
}

type capper struct {
	cfg      *Config
	next     consumer.Metrics
	log      *zap.Logger
	reserved map[string]bool

	mu       sync.Mutex
	seen     map[string]map[string]struct{} // source -> agents kept
	warned   map[string]bool
	overflow int64
}

func (p *capper) Start(context.Context, component.Host) error { return nil }
func (p *capper) Shutdown(context.Context) error              { return nil }
func (p *capper) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

func (p *capper) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	p.mu.Lock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		source := ""
		if v, ok := rm.Resource().Attributes().Get(p.cfg.SourceAttribute); ok {
			source = v.AsString()
		}
		kept := p.seen[source]
		if kept == nil {
			kept = map[string]struct{}{}
			p.seen[source] = kept
		}
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				p.capMetric(source, kept, ms.At(k))
			}
		}
	}
	p.mu.Unlock()
	return p.next.ConsumeMetrics(ctx, md)
}

func (p *capper) capMetric(source string, kept map[string]struct{}, m pmetric.Metric) {
	apply := func(attrs pcommon.Map) { p.capAttrs(source, kept, attrs) }
	switch m.Type() {
	case pmetric.MetricTypeSum:
		dps := m.Sum().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			apply(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeGauge:
		dps := m.Gauge().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			apply(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			apply(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			apply(dps.At(i).Attributes())
		}
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			apply(dps.At(i).Attributes())
		}
	}
}

func (p *capper) capAttrs(source string, kept map[string]struct{}, attrs pcommon.Map) {
	v, ok := attrs.Get(p.cfg.Attribute)
	if !ok {
		return
	}
	agent := v.AsString()
	if p.reserved[agent] {
		return
	}
	if _, ok := kept[agent]; ok {
		return
	}
	if len(kept) < p.cfg.MaxAgents {
		kept[agent] = struct{}{}
		return
	}
	attrs.PutStr(p.cfg.Attribute, p.cfg.OverflowValue)
	p.overflow++
	if p.warned == nil {
		p.warned = map[string]bool{}
	}
	if !p.warned[source] {
		p.warned[source] = true
		p.log.Warn("more distinct agents than max_agents from one source: the rest are reported as the overflow value",
			zap.String("source", source), zap.Int("max_agents", p.cfg.MaxAgents), zap.String("overflow_value", p.cfg.OverflowValue))
	}
}
