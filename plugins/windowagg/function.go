package windowagg

import "strings"

// Function computes the output value of a series from its State. It returns
// false when the samples cannot define a value (the delta of one sample, for
// example); the series is then not emitted for that window.
type Function interface {
	Name() string
	Result(s *State) (float64, bool)
}

// functions are the registered functions by lower-case name: spec languages
// name them in any case.
var functions = NewRegistry[Function]("windowagg: function")

// RegisterFunction makes f available to specs under f.Name(). Functions are
// registered from init functions, so a user's own build can add one beside the
// built-in ones; registering a name twice is a programming error and panics.
func RegisterFunction(f Function) { functions.Register(strings.ToLower(f.Name()), f) }

// LookupFunction returns the function registered under name (case-insensitive).
func LookupFunction(name string) (Function, bool) { return functions.Lookup(strings.ToLower(name)) }

// FunctionNames lists the registered function names in order, for error
// messages and documentation.
func FunctionNames() []string { return functions.Names() }
