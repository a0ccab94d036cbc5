// Package steps holds flow's step types, one file each. Every file registers
// its type with engine.Register from init: its YAML fields (the struct),
// whether it changes state (Mutates), how it renders for plan and dry run
// (Render) and how it runs (Run). Import the package for its side effects.
package steps
