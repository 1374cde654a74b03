package monascaspec

import (
	"errors"
	"fmt"
	"strings"
)

// specRef identifies one specification in messages. The name is filled in
// once it has been decoded, which may be after problems of the same
// specification were recorded: messages are formatted only when the load
// ends, so all of them carry the name.
type specRef struct {
	index int // 1-based position in the file
	name  string
}

func (s *specRef) String() string {
	if s.name == "" {
		return fmt.Sprintf("specification %d", s.index)
	}
	return fmt.Sprintf("specification %d (%q)", s.index, s.name)
}

// place is where a problem lies: a specification (nil for the file as a
// whole) and a dotted field path within it, such as "rollup.function".
type place struct {
	spec  *specRef
	field string
}

func (p place) child(field string) place {
	if p.field != "" {
		field = p.field + "." + field
	}
	return place{spec: p.spec, field: field}
}

// problem is one error or warning.
type problem struct {
	line int // 1-based; 0 when unknown
	at   place
	msg  string
}

// problems collects the errors and warnings of one load and formats them as
// "source:line: specification N ("name"): field: message", leaving out the
// parts that do not apply.
type problems struct {
	source   string
	errs     []problem
	warnings []problem
}

func (p *problems) errorf(line int, at place, format string, args ...any) {
	p.errs = append(p.errs, problem{line: line, at: at, msg: fmt.Sprintf(format, args...)})
}

func (p *problems) warnf(line int, at place, format string, args ...any) {
	p.warnings = append(p.warnings, problem{line: line, at: at, msg: fmt.Sprintf(format, args...)})
}

func (p *problems) format(pr problem) string {
	var b strings.Builder
	switch {
	case p.source != "" && pr.line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.source, pr.line)
	case p.source != "":
		b.WriteString(p.source + ": ")
	case pr.line > 0:
		fmt.Fprintf(&b, "line %d: ", pr.line)
	}
	if pr.at.spec != nil {
		b.WriteString(pr.at.spec.String() + ": ")
	}
	if pr.at.field != "" {
		b.WriteString(pr.at.field + ": ")
	}
	b.WriteString(pr.msg)
	return b.String()
}

// result returns the formatted warnings and all errors joined into one, or a
// nil error when there were none.
func (p *problems) result() ([]string, error) {
	var warnings []string
	for _, w := range p.warnings {
		warnings = append(warnings, p.format(w))
	}
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = errors.New(p.format(e))
	}
	return warnings, errors.Join(errs...)
}
