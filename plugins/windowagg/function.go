package windowagg

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Function computes the output value of a series from its State. It returns
// false when the samples cannot define a value (the delta of one sample, for
// example); the series is then not emitted for that window.
type Function interface {
	Name() string
	Result(s *State) (float64, bool)
}

var (
	functionsMu sync.RWMutex
	functions   = map[string]Function{}
)

// RegisterFunction makes f available to specs under f.Name(). Functions are
// registered from init functions, so a user's own build can add one beside the
// built-in ones; registering a name twice is a programming error and panics.
func RegisterFunction(f Function) {
	functionsMu.Lock()
	defer functionsMu.Unlock()
	name := strings.ToLower(f.Name())
	if _, exists := functions[name]; exists {
		panic(fmt.Sprintf("windowagg: function %q registered twice", name))
	}
	functions[name] = f
}

// LookupFunction returns the function registered under name (case-insensitive).
func LookupFunction(name string) (Function, bool) {
	functionsMu.RLock()
	defer functionsMu.RUnlock()
	f, ok := functions[strings.ToLower(name)]
	return f, ok
}

// FunctionNames lists the registered function names in order, for error
// messages and documentation.
func FunctionNames() []string {
	functionsMu.RLock()
	defer functionsMu.RUnlock()
	names := make([]string, 0, len(functions))
	for n := range functions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
