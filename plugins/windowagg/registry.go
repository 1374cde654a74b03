package windowagg

import (
	"fmt"
	"slices"
	"sync"
)

// Registry holds named, pluggable parts of a spec language, such as the
// engine's functions or monasca-transform's usage components. Parts are
// registered from init functions, so a user's own build can add one beside
// the built-in ones; registering a name twice is a programming error and
// panics.
type Registry[T any] struct {
	what  string
	mu    sync.RWMutex
	items map[string]T
}

// NewRegistry returns an empty registry of parts called what ("function").
func NewRegistry[T any](what string) *Registry[T] {
	return &Registry[T]{what: what}
}

// Register makes v available under name.
func (r *Registry[T]) Register(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, exists := r.items[name]; exists {
		panic(fmt.Sprintf("%s %q registered twice", r.what, name))
	}
	if r.items == nil {
		r.items = map[string]T{}
	}
	r.items[name] = v
}

// Lookup returns the part registered under name.
func (r *Registry[T]) Lookup(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.items[name]
	return v, ok
}

// Names lists the registered names in order, for messages and documentation.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.items))
	for n := range r.items {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
