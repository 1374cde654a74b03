package monascaspec

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/bloblang"

	"github.com/monasca-connect/monasca-connect/plugins/windowagg"
)

// formulaEnvironment is the Bloblang of derived-metric formulas: pure
// functions only, no imports, so that a formula gives the same value for
// the same inputs wherever and whenever a window closes (one instance or
// stage two of a scale-out). Built at first use, after the init functions
// of a custom build have registered their own functions.
var formulaEnvironment = sync.OnceValue(func() *bloblang.Environment {
	return bloblang.GlobalEnvironment().OnlyPure().WithDisabledImports()
})

// variableName is what a formula can read as this.<name>.
var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// thisField finds the fields a formula reads from its input document.
var thisField = regexp.MustCompile(`\bthis\.([A-Za-z_][A-Za-z0-9_]*)`)

// bloblangFormula evaluates a Bloblang mapping over an object of the
// variables' values, which must assign root a number.
type bloblangFormula struct {
	names []string
	exec  *bloblang.Executor
}

// compileFormula parses src, a Bloblang mapping of the variables names.
// Besides Bloblang's own checks it rejects a this.<field> that names no
// variable: a typo would otherwise make every value fail at run time.
func compileFormula(src string, names []string) (windowagg.Formula, error) {
	exec, err := formulaEnvironment().Parse(src)
	if err != nil {
		return nil, fmt.Errorf("is not a valid Bloblang mapping: %w", err)
	}
	for _, m := range thisField.FindAllStringSubmatch(src, -1) {
		if !slices.Contains(names, m[1]) {
			quoted := make([]string, len(names))
			for i, n := range names {
				quoted[i] = strconv.Quote(n)
			}
			return nil, fmt.Errorf("reads this.%s, which is not an input; the inputs are %s", m[1], strings.Join(quoted, ", "))
		}
	}
	return &bloblangFormula{names: names, exec: exec}, nil
}

// divideByZero is how Bloblang's arithmetic reports a division or a
// remainder by zero; its error has no exported type to test for.
const divideByZero = "attempted to divide by zero"

func (f *bloblangFormula) Eval(values []float64) (float64, error) {
	doc := make(map[string]any, len(f.names))
	for i, n := range f.names {
		doc[n] = values[i]
	}
	res, err := f.exec.Query(doc)
	switch {
	case errors.Is(err, bloblang.ErrRootDeleted):
		return 0, fmt.Errorf("%w: the formula deleted root", windowagg.ErrNotANumber)
	case err != nil && strings.Contains(err.Error(), divideByZero):
		return 0, fmt.Errorf("%w: %v", windowagg.ErrDivisionByZero, err)
	case err != nil:
		return 0, err
	}
	switch v := res.(type) {
	case float64:
		return v, nil
	case int64:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case int:
		return float64(v), nil
	case float32:
		return float64(v), nil
	case int32:
		return float64(v), nil
	case uint32:
		return float64(v), nil
	}
	return 0, fmt.Errorf("%w: the formula gave %T %v", windowagg.ErrNotANumber, res, res)
}
