// Command kstatus prints how GitOps tools judge a Kubernetes object's health.
//
// It reads one object as JSON on stdin and writes one JSON document on stdout:
//
//	{"status": "Current", "message": "Resource is Ready", "conditions": [...]}
//
// "status" is what sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute says (InProgress,
// Current, Failed, Terminating or Unknown): the verdict of Flux's `wait: true`, Argo CD's
// fallback and `kubectl wait`-style tooling built on kstatus. With -flux FILE (a Flux
// Kustomization), the document also has "flux": the verdict of that Kustomization's
// spec.healthCheckExprs entry for the object's apiVersion and kind, evaluated the way
// kustomize-controller does (RFC 0009: an unobserved generation is InProgress; then the
// inProgress, failed and current expressions in that order; none true is InProgress), or
// absent when no entry matches. An expression that cannot be evaluated (it names a field the
// object lacks, such as status before the first reconcile) makes the verdict Unknown, with
// the error in "fluxError": kustomize-controller then keeps waiting, as for InProgress.
//
// It is a test tool of the modelops repository (hack/build-tools.sh kstatus), not part of
// the product.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// healthCheckExpr is one entry of a Flux Kustomization's spec.healthCheckExprs.
type healthCheckExpr struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Current    string `json:"current"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
}

type kustomization struct {
	Spec struct {
		HealthCheckExprs []healthCheckExpr `json:"healthCheckExprs"`
	} `json:"spec"`
}

type output struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
	Flux       *string            `json:"flux,omitempty"`
	FluxError  string             `json:"fluxError,omitempty"`
}

func main() {
	fluxFile := flag.String("flux", "", "a Flux Kustomization whose spec.healthCheckExprs to evaluate too")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *fluxFile); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, fluxFile string) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	// Kubernetes' decoder keeps integers as int64, which kstatus's accessors require.
	obj := map[string]any{}
	if err := k8sjson.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("stdin is not a JSON object: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	res, err := status.Compute(u)
	if err != nil {
		return err
	}
	doc := output{Status: res.Status.String(), Message: res.Message, Conditions: res.Conditions}
	if doc.Conditions == nil {
		doc.Conditions = []status.Condition{}
	}
	if fluxFile != "" {
		verdict, evalErr, err := fluxVerdict(u, fluxFile)
		if err != nil {
			return err
		}
		doc.Flux = verdict
		if evalErr != nil {
			doc.FluxError = evalErr.Error()
		}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// fluxVerdict evaluates the Kustomization's expressions for u's kind; nil when none apply.
// evalErr is an expression that could not be evaluated on this object (verdict Unknown);
// err is a file that cannot be used at all.
func fluxVerdict(u *unstructured.Unstructured, file string) (verdict *string, evalErr, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, e := range k.Spec.HealthCheckExprs {
		if e.APIVersion != u.GetAPIVersion() || e.Kind != u.GetKind() {
			continue
		}
		// A malformed entry is the file's fault, not the object's: fail loudly.
		if e.Current == "" {
			return nil, nil, fmt.Errorf("%s: %s: healthCheckExprs entry without current", file, e.Kind)
		}
		for _, expr := range []string{e.InProgress, e.Failed, e.Current} {
			if expr == "" {
				continue
			}
			if _, err := program(expr); err != nil {
				return nil, nil, fmt.Errorf("%s: %s: %w", file, e.Kind, err)
			}
		}
		s, evalErr := evaluate(e, u.Object)
		if evalErr != nil {
			s = status.UnknownStatus.String()
		}
		return &s, evalErr, nil
	}
	return nil, nil, nil
}

// evaluate applies RFC 0009's order; see the package comment.
func evaluate(e healthCheckExpr, obj map[string]any) (string, error) {
	observed, hasObserved, err := unstructured.NestedInt64(obj, "status", "observedGeneration")
	if err != nil {
		return "", err
	}
	generation, hasGeneration, err := unstructured.NestedInt64(obj, "metadata", "generation")
	if err != nil {
		return "", err
	}
	if hasObserved && hasGeneration && observed != generation {
		return status.InProgressStatus.String(), nil
	}
	for _, step := range []struct {
		expr   string
		result status.Status
	}{
		{e.InProgress, status.InProgressStatus},
		{e.Failed, status.FailedStatus},
		{e.Current, status.CurrentStatus},
	} {
		if step.expr == "" {
			continue
		}
		ok, err := evalBool(step.expr, obj)
		if err != nil {
			return "", err
		}
		if ok {
			return step.result.String(), nil
		}
	}
	return status.InProgressStatus.String(), nil
}

// evalBool evaluates expr with the object's top-level fields as variables.
func evalBool(expr string, obj map[string]any) (bool, error) {
	prog, err := program(expr)
	if err != nil {
		return false, err
	}
	val, _, err := prog.Eval(obj)
	if err != nil {
		return false, fmt.Errorf("evaluating %q: %w", expr, err)
	}
	b, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%q is not a boolean expression", expr)
	}
	return bool(b), nil
}

// program parses expr in an environment with the options kustomize-controller enables
// (optional types, strings, sets, encoders).
func program(expr string) (cel.Program, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return nil, err
	}
	// Parsed, not compiled: the variables are the object's fields, unknown to a checker.
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("parsing %q: %w", expr, issues.Err())
	}
	return env.Program(ast)
}
