// dashcheck strictly validates Grafana dashboard JSON files against the schema of the
// grafana-foundation-sdk (the same models Grafana's own schema is generated from).
//
// Strict means: an unknown field, a field of the wrong type or a missing required field
// anywhere in the dashboard, a panel's options or field config, or a query is an error.
// On top of the schema, every panel must be of a known panel type and every query must be
// recognised as a Prometheus query (the SDK would otherwise keep it as an opaque bag and
// skip checking it).
//
// Usage: dashcheck FILE.json... ; exit 0 when every file passes, 1 otherwise.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func checkPanel(path string, panel dashboard.Panel) []string {
	var problems []string
	where := fmt.Sprintf("%s: panel %q", path, deref(panel.Title))
	if _, ok := cog.ConfigForPanelcfgVariant(panel.Type); !ok {
		problems = append(problems, fmt.Sprintf("%s: unknown panel type %q", where, panel.Type))
	}
	for i, target := range panel.Targets {
		if _, unknown := target.(variants.UnknownDataquery); unknown {
			problems = append(problems, fmt.Sprintf(
				"%s: targets[%d] is not a Prometheus query (set datasource.type)", where, i))
		} else if target.DataqueryType() != "prometheus" {
			problems = append(problems, fmt.Sprintf(
				"%s: targets[%d] has type %q, want prometheus", where, i, target.DataqueryType()))
		}
	}
	return problems
}

func checkFile(path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var dash dashboard.Dashboard
	if err := real(dash.UnmarshalJSONStrict(raw)); err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	if err := real(dash.Validate()); err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	// The SDK drops a panel whose strict decoding returns its (empty) error list, so the
	// panels are decoded again one by one here to run the checks below on every one.
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	return checkPanels(path, top.Panels)
}

func checkPanels(path string, raws []json.RawMessage) []string {
	var problems []string
	for i, raw := range raws {
		var head struct {
			Type        string            `json:"type"`
			Panels      []json.RawMessage `json:"panels"`
			FieldConfig json.RawMessage   `json:"fieldConfig"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			problems = append(problems, fmt.Sprintf("%s: panels[%d]: %v", path, i, err))
			continue
		}
		if head.Type == "row" {
			problems = append(problems, checkPanels(path, head.Panels)...)
			continue
		}
		var panel dashboard.Panel
		if err := real(panel.UnmarshalJSONStrict(raw)); err != nil {
			problems = append(problems, fmt.Sprintf("%s: panels[%d]: %v", path, i, err))
			continue
		}
		// The SDK decodes fieldConfig leniently (only `custom` strictly): check it all.
		if head.FieldConfig != nil {
			var fc dashboard.FieldConfigSource
			if err := real(fc.UnmarshalJSONStrict(head.FieldConfig)); err != nil {
				problems = append(problems, fmt.Sprintf(
					"%s: panel %q: fieldConfig: %v", path, deref(panel.Title), err))
			}
		}
		problems = append(problems, checkPanel(path, panel)...)
	}
	return problems
}

// real drops the empty error list the SDK returns as a non-nil error (a typed nil slice).
func real(err error) error {
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck FILE.json...")
		os.Exit(2)
	}
	// Registers every panel type and query type so that options and targets are checked too.
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		problems := checkFile(path)
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		if len(problems) > 0 {
			failed = true
		} else {
			fmt.Printf("%s: ok\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}
