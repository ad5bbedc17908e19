// Package zerofirst is the budgetwatch_zerofirst processor.
package zerofirst

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
)

// Config configures the budgetwatch_zerofirst processor (no settings yet).
type Config struct{}

// NewFactory returns the budgetwatch_zerofirst processor: the budgetwatch library's
// "a new series is first exported with value 0" (contract section 2) for sources that do
// not do it. Prometheus's increase() and the budget rules count a series from its first
// sample, so a series whose first sample already holds the first call's cost would lose it.
// For every monotonic cumulative sum stream seen for the first time whose start time is
// after this collector started (a stream born while we watch), a point of value 0 is
// inserted 1 ms before its first point. A stream that started before the collector (the
// collector restarted under a running source) gets no zero: it may hold spend we already
// counted, and the rules then count it from its first sample (flagged partial).
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType("budgetwatch_zerofirst"),
		func() component.Config { return &Config{} },
		processor.WithMetrics(createZeroFirst, component.StabilityLevelDevelopment),
	)
}

func createZeroFirst(_ context.Context, _ processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
	if _, ok := cfg.(*Config); !ok {
		return nil, errors.New("budgetwatch_zerofirst: unexpected configuration type")
	}
	return &zeroFirst{next: next, started: pcommon.NewTimestampFromTime(time.Now()), seen: map[string]struct{}{}}, nil
}

type zeroFirst struct {
	next    consumer.Metrics
	started pcommon.Timestamp

	mu   sync.Mutex
	seen map[string]struct{}
}

func (p *zeroFirst) Start(context.Context, component.Host) error { return nil }
func (p *zeroFirst) Shutdown(context.Context) error              { return nil }
func (p *zeroFirst) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

func attrsKey(m pcommon.Map) string {
	parts := make([]string, 0, m.Len())
	m.Range(func(k string, v pcommon.Value) bool {
		parts = append(parts, k+"\x00"+v.AsString())
		return true
	})
	sort.Strings(parts)
	return strings.Join(parts, "\x01")
}

func (p *zeroFirst) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	p.mu.Lock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		resource := attrsKey(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() != pmetric.MetricTypeSum || !m.Sum().IsMonotonic() ||
					m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
					continue
				}
				p.zeroNewStreams(resource+"\x02"+m.Name(), m.Sum().DataPoints())
			}
		}
	}
	p.mu.Unlock()
	return p.next.ConsumeMetrics(ctx, md)
}

func (p *zeroFirst) zeroNewStreams(prefix string, dps pmetric.NumberDataPointSlice) {
	var out pmetric.NumberDataPointSlice
	inserted := false
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		key := prefix + "\x02" + attrsKey(dp.Attributes())
		_, known := p.seen[key]
		p.seen[key] = struct{}{}
		needsZero := !known && dp.StartTimestamp() >= p.started && dp.Timestamp() > 1_000_000 &&
			(dp.DoubleValue() != 0 || dp.IntValue() != 0)
		if needsZero && !inserted {
			out = pmetric.NewNumberDataPointSlice()
			for j := 0; j < i; j++ {
				dps.At(j).CopyTo(out.AppendEmpty())
			}
			inserted = true
		}
		if needsZero {
			zero := out.AppendEmpty()
			dp.CopyTo(zero)
			if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
				zero.SetIntValue(0)
			} else {
				zero.SetDoubleValue(0)
			}
			zero.SetTimestamp(dp.Timestamp() - 1_000_000)
		}
		if inserted {
			dp.CopyTo(out.AppendEmpty())
		}
	}
	if inserted {
		out.CopyTo(dps)
	}
}
