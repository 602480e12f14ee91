package campaign

import (
	"errors"
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// ErrRule marks a rule that is refused at submission.
var ErrRule = errors.New("campaign rule refused")

// Rule is a checked, compiled campaign: evaluate it with Bonus.
type Rule struct {
	Def      Definition
	Hash     [32]byte
	Estimate cost.Estimate // static cost estimate (Max <= MaxCost)
	prg      cel.Program
	part     cel.Program // partial evaluation: the score-only variables may be unknown
}

// env is the CEL environment of VarsVersion: the standard library and the
// declared variables, nothing else (no extension: no clock, no random, no
// I/O). It is safe for concurrent use.
var env = func() *cel.Env {
	opts := make([]cel.EnvOption, 0, len(Vars))
	for _, v := range Vars {
		opts = append(opts, cel.Variable(v.Name, celType(v.Type)))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		panic(err)
	}
	return e
}()

func celType(t string) *cel.Type {
	switch t {
	case "int":
		return cel.IntType
	case "double":
		return cel.DoubleType
	case "string":
		return cel.StringType
	case "list(string)":
		return cel.ListType(cel.StringType)
	}
	panic("campaign: unknown variable type " + t)
}

// forbidden are overload id fragments a rule may not use: time (a rule
// sees the day through date and weekday only, never a clock or a zone
// database) and dynamic typing.
var forbidden = []string{"timestamp", "duration", "time", "dyn"}

// Compile checks a definition and its rule: the definition's fields, the
// rule's syntax and types (it must be an int over Vars), the functions it
// calls, and its static cost estimate (at most MaxCost with the inputs'
// bounds). A rule that passes cannot mint more than Cap points a
// vehicle-day (Bonus clamps) nor more than Budget in all (the ledger
// stops paying there).
func Compile(d Definition) (*Rule, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("campaign %q: %s: %w", d.ID(), fmt.Sprintf(format, a...), ErrRule)
	}
	ast, iss := env.Compile(d.Rule)
	if iss != nil && iss.Err() != nil {
		return nil, bad("%v", iss.Err())
	}
	if ast.OutputType() != cel.IntType {
		return nil, bad("the rule is of type %s, want int (bonus points)", ast.OutputType())
	}
	for _, r := range ast.NativeRep().ReferenceMap() {
		for _, o := range r.OverloadIDs {
			for _, f := range forbidden {
				if strings.Contains(strings.ToLower(o), f) {
					return nil, bad("function %s is not allowed", o)
				}
			}
		}
	}
	est, err := env.EstimateCost(ast, sizes{})
	if err != nil {
		return nil, bad("cost: %v", err)
	}
	if est.Max > MaxCost {
		return nil, bad("static cost estimate %d..%d, limit %d", est.Min, est.Max, MaxCost)
	}
	prg, err := env.Program(ast, cel.CostLimit(MaxCost), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, bad("%v", err)
	}
	part, err := env.Program(ast, cel.CostLimit(MaxCost), cel.EvalOptions(cel.OptPartialEval))
	if err != nil {
		return nil, bad("%v", err)
	}
	return &Rule{Def: d, Hash: d.RuleHash(), Estimate: est, prg: prg, part: part}, nil
}

// sizes bounds the sizes of the variables for the static estimate.
type sizes struct{}

func (sizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	switch {
	case p[0] == "flags" && len(p) == 1:
		return &cost.SizeEstimate{Min: 0, Max: MaxFlags}
	case p[0] == "flags" || p[0] == "date" || p[0] == "tz" || p[0] == "config_version" || p[0] == "region":
		return &cost.SizeEstimate{Min: 0, Max: MaxStringBytes}
	}
	return nil
}

func (sizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// Bonus evaluates the rule on one vehicle-day's inputs and clamps the
// result to [0, Cap]. An evaluation error (integer overflow, the runtime
// cost limit, a division by zero) is returned, and the day earns nothing.
func (r *Rule) Bonus(in *Inputs) (int64, error) {
	v, _, err := r.prg.Eval(activation{in})
	if err != nil {
		return 0, fmt.Errorf("campaign %q: %w", r.Def.ID(), err)
	}
	n, ok := v.(types.Int)
	if !ok {
		return 0, fmt.Errorf("campaign %q: result %v is not an int", r.Def.ID(), v)
	}
	return min(max(int64(n), 0), r.Def.Cap), nil
}

// ScoreOnly are the variables a credit entry does not carry (they come
// from the day's score alone): the book cannot tell their values.
var ScoreOnly = []string{"distance_km", "gps_km", "odometer_km", "driving_s", "harsh_brake", "harsh_accel",
	"harsh_corner", "speeding_s", "night_s", "fatigue_events", "events", "region"}

var scoreOnlyPatterns = func() []*cel.AttributePatternType {
	pats := make([]*cel.AttributePatternType, len(ScoreOnly))
	for i, v := range ScoreOnly {
		pats[i] = cel.AttributePattern(v)
	}
	return pats
}()

// BookBonus evaluates the rule on what a credit entry carries (in's
// ScoreOnly fields are ignored: unknown), by CEL's partial evaluation:
// known is false when the result depends on an unknown variable (the
// book alone cannot tell the bonus), else n is the bonus clamped to
// [0, Cap], as Bonus would give whatever the unknown variables hold.
func (r *Rule) BookBonus(in *Inputs) (n int64, known bool, err error) {
	act, err := cel.PartialVars(activation{in}, scoreOnlyPatterns...)
	if err != nil {
		return 0, false, fmt.Errorf("campaign %q: %w", r.Def.ID(), err)
	}
	v, _, err := r.part.Eval(act)
	if types.IsUnknown(v) {
		return 0, false, nil
	}
	if err != nil {
		return 0, true, fmt.Errorf("campaign %q: %w", r.Def.ID(), err)
	}
	i, ok := v.(types.Int)
	if !ok {
		return 0, true, fmt.Errorf("campaign %q: result %v is not an int", r.Def.ID(), v)
	}
	return min(max(int64(i), 0), r.Def.Cap), true, nil
}

// activation resolves the variables from Inputs without a map.
type activation struct{ in *Inputs }

func (a activation) ResolveName(name string) (any, bool) {
	in := a.in
	var v ref.Val
	switch name {
	case "points":
		v = types.Int(in.Points)
	case "score":
		v = types.Double(in.Score)
	case "distance_km":
		v = types.Double(in.DistanceKm)
	case "gps_km":
		v = types.Double(in.GpsKm)
	case "odometer_km":
		v = types.Double(in.OdometerKm)
	case "driving_s":
		v = types.Int(in.DrivingS)
	case "harsh_brake":
		v = types.Int(in.HarshBrake)
	case "harsh_accel":
		v = types.Int(in.HarshAccel)
	case "harsh_corner":
		v = types.Int(in.HarshCorner)
	case "speeding_s":
		v = types.Int(in.SpeedingS)
	case "night_s":
		v = types.Int(in.NightS)
	case "fatigue_events":
		v = types.Int(in.FatigueEvents)
	case "events":
		v = types.Int(in.Events)
	case "flags":
		v = types.NewStringList(types.DefaultTypeAdapter, in.Flags)
	case "date":
		v = types.String(in.Date)
	case "tz":
		v = types.String(in.TZ)
	case "config_version":
		v = types.String(in.ConfigVersion)
	case "weekday":
		v = types.Int(in.Weekday)
	case "region":
		v = types.String(in.Region)
	case "tenure_days":
		v = types.Int(in.TenureDays)
	default:
		return nil, false
	}
	return v, true
}

func (activation) Parent() interpreter.Activation { return nil }
