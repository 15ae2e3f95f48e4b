package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/tools/go/packages"
)

// Saved names. A type is saved under a name that is part of the format, not
// derived from where the Go code lives: each package with annotated types
// holds one line
//
//	// +stateify package=NAME
//
// and its types are saved as NAME.TypeName, unless a type's annotation
// gives its own full name:
//
//	// +stateify savable name=NAME.OtherName
//
// So a type moved to another package keeps its saved name by carrying a
// name= (or by moving with all its package's types under the same package
// line), and old images keep loading.

const packageLinePrefix = "+stateify package="

var (
	packageNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*$`)
	typeNameRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*\.[A-Za-z_][A-Za-z0-9_]*$`)
)

// typeAnnotation is a parsed `+stateify savable [name=NAME]` line.
type typeAnnotation struct {
	// name is the saved name given with name=, or "".
	name string
	// err is what is wrong with the line, or "".
	err string
}

// parseAnnotation finds the annotation in a type's doc comment.
func parseAnnotation(doc *ast.CommentGroup) (typeAnnotation, bool) {
	if doc == nil {
		return typeAnnotation{}, false
	}
	for _, c := range doc.List {
		line := strings.TrimSpace(strings.TrimPrefix(c.Text, "//"))
		rest, ok := strings.CutPrefix(line, annotation)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		var ta typeAnnotation
		for _, opt := range strings.Fields(rest) {
			val, isName := strings.CutPrefix(opt, "name=")
			switch {
			case !isName:
				ta.err = fmt.Sprintf("unknown option %q in %q (want name=PKG.Type)", opt, line)
			case ta.name != "":
				ta.err = fmt.Sprintf("name= given twice in %q", line)
			case !typeNameRE.MatchString(val):
				ta.err = fmt.Sprintf("saved name %q is not PKG.Type (PKG of letters, digits, _ . / -; Type a Go identifier)", val)
			default:
				ta.name = val
			}
		}
		return ta, true
	}
	return typeAnnotation{}, false
}

// packageLine is a `+stateify package=NAME` line.
type packageLine struct {
	name string
	pos  token.Pos
}

// packageLines returns every package line of the files, in file order.
func packageLines(files []*ast.File) []packageLine {
	var out []packageLine
	for _, f := range files {
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				line := strings.TrimSpace(strings.TrimPrefix(c.Text, "//"))
				if name, ok := strings.CutPrefix(line, packageLinePrefix); ok {
					out = append(out, packageLine{name: strings.TrimSpace(name), pos: c.Pos()})
				}
			}
		}
	}
	return out
}

// checkPackageLines returns the package's saved-name prefix from its lines,
// or what is wrong with them (at the offending line, or at noLine when
// there is none).
func checkPackageLines(fset *token.FileSet, pkgName string, lines []packageLine, noLine token.Pos) (string, *GenError) {
	switch {
	case len(lines) == 0:
		return "", &GenError{Pos: fset.Position(noLine), Msg: fmt.Sprintf(
			"package %s has +stateify savable types but no %q line: add one to a file of the package (its types are saved as NAME.Type; a new package takes its import path)",
			pkgName, "// "+packageLinePrefix+"NAME")}
	case len(lines) > 1:
		return "", &GenError{Pos: fset.Position(lines[1].pos), Msg: fmt.Sprintf(
			"second %q line in package %s; the first is at %s", packageLinePrefix, pkgName, rel(fset.Position(lines[0].pos).String()))}
	case !packageNameRE.MatchString(lines[0].name) || strings.HasSuffix(lines[0].name, ".") || strings.HasSuffix(lines[0].name, "/"):
		return "", &GenError{Pos: fset.Position(lines[0].pos), Msg: fmt.Sprintf(
			"saved package name %q: use letters, digits, _ . / - only, not ending in . or /", lines[0].name)}
	}
	return lines[0].name, nil
}

// savedEntry is one type's saved name, for the duplicate check.
type savedEntry struct {
	name string
	typ  string // pkgpath.Type, for messages
	pkg  string // import path of the declaring package
	pos  token.Position
}

// annotations finds `+stateify savable` types and saved names in any
// package by parsing source (export data has positions but no comments).
type annotations struct {
	fset  *token.FileSet
	files map[string]map[string]typeAnnotation // filename -> annotated type names
	dirs  map[string]dirPackage                // directory -> its package line
}

// dirPackage is the saved-name prefix of the package in a directory, or why
// there is none.
type dirPackage struct {
	name string
	err  string
}

func newAnnotations() *annotations {
	return &annotations{
		fset:  token.NewFileSet(),
		files: make(map[string]map[string]typeAnnotation),
		dirs:  make(map[string]dirPackage),
	}
}

func (a *annotations) fileTypes(fn string) map[string]typeAnnotation {
	names, ok := a.files[fn]
	if !ok {
		names = map[string]typeAnnotation{}
		if f, err := parser.ParseFile(a.fset, fn, nil, parser.ParseComments|parser.SkipObjectResolution); err == nil {
			for _, s := range annotatedSpecs(f) {
				names[s.ts.Name.Name] = s.ann
			}
		}
		a.files[fn] = names
	}
	return names
}

func (a *annotations) isAnnotated(fset *token.FileSet, obj *types.TypeName) bool {
	fn := fset.Position(obj.Pos()).Filename
	if fn == "" {
		return false
	}
	_, ok := a.fileTypes(fn)[obj.Name()]
	return ok
}

// savedName returns the saved name of an annotated type declared outside
// the package being generated, or an error message.
func (a *annotations) savedName(fset *token.FileSet, obj *types.TypeName) (string, string) {
	fn := fset.Position(obj.Pos()).Filename
	ta := a.fileTypes(fn)[obj.Name()]
	if ta.err != "" {
		return "", fmt.Sprintf("type %s.%s: %s", obj.Pkg().Path(), obj.Name(), ta.err)
	}
	if ta.name != "" {
		return ta.name, ""
	}
	dir := filepath.Dir(fn)
	dp, ok := a.dirs[dir]
	if !ok {
		dp = a.readDir(dir, obj.Pkg().Name())
		a.dirs[dir] = dp
	}
	if dp.err != "" {
		return "", fmt.Sprintf("type %s.%s: %s", obj.Pkg().Path(), obj.Name(), dp.err)
	}
	return dp.name + "." + obj.Name(), ""
}

// readDir finds the package line of package pkgName in dir.
func (a *annotations) readDir(dir, pkgName string) dirPackage {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return dirPackage{err: err.Error()}
	}
	var files []*ast.File
	for _, ent := range ents {
		n := ent.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") || strings.HasSuffix(n, "_state_autogen.go") {
			continue
		}
		f, err := parser.ParseFile(a.fset, filepath.Join(dir, n), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil || f.Name.Name != pkgName {
			continue
		}
		files = append(files, f)
	}
	name, gerr := checkPackageLines(a.fset, pkgName, packageLines(files), token.NoPos)
	if gerr != nil {
		return dirPackage{err: gerr.Msg}
	}
	return dirPackage{name: name}
}

// duplicateNames reports saved names used by two types that can meet in one
// program: in one package, or in two packages one of which imports the
// other (directly or through other packages), or which a package of the
// run imports both of. The packages of the run are seen with the types
// they generate (saved); the packages of the run's module that they import
// without being in the run (`go generate` runs stategen on one package)
// are seen through their type information and source (ann), as far as
// their import lists go (export data lists the packages a package's API
// refers to, which may not be all it imports). Packages the run cannot
// reach are not seen; stateify.Register still reports a duplicate when a
// program registers its types.
func duplicateNames(pkgs []*packages.Package, saved map[string][]savedEntry, ann *annotations) GenErrors {
	byPath := map[string]*packages.Package{}
	module := ""
	for _, p := range pkgs {
		byPath[p.PkgPath] = p
		if module == "" && p.Module != nil {
			module = p.Module.Path
		}
	}
	inModule := func(path string) bool {
		return module != "" && (path == module || strings.HasPrefix(path, module+"/"))
	}
	reach := func(root *packages.Package) []string {
		seen := map[string]bool{}
		var walk func(tp *types.Package)
		walk = func(tp *types.Package) {
			if seen[tp.Path()] {
				return
			}
			seen[tp.Path()] = true
			if q, ok := byPath[tp.Path()]; ok && q.Types != nil {
				tp = q.Types // checked from source: its imports are all there
			} else if _, ok := saved[tp.Path()]; !ok {
				saved[tp.Path()] = ann.packageSaved(root.Fset, tp)
			}
			for _, imp := range tp.Imports() {
				if inModule(imp.Path()) {
					walk(imp)
				}
			}
		}
		walk(root.Types)
		out := make([]string, 0, len(seen))
		for path := range seen {
			out = append(out, path)
		}
		sort.Strings(out)
		return out
	}
	var errs GenErrors
	reported := map[[2]token.Position]bool{}
	for _, p := range pkgs {
		first := map[string]savedEntry{}
		for _, path := range reach(p) {
			for _, e := range saved[path] {
				prev, dup := first[e.name]
				if e.name == "" || (dup && prev.pkg == e.pkg) {
					continue // a package's own duplicates are reported by its generator
				}
				if !dup {
					first[e.name] = e
					continue
				}
				a, b := prev, e
				_, aRun := byPath[a.pkg]
				_, bRun := byPath[b.pkg]
				if later(a.pos, b.pos) && aRun == bRun || aRun && !bRun {
					a, b = b, a // reported at the later, or at the one in the run
				}
				if reported[[2]token.Position{a.pos, b.pos}] {
					continue
				}
				reported[[2]token.Position{a.pos, b.pos}] = true
				errs = append(errs, &GenError{Pos: b.pos, Msg: fmt.Sprintf(
					"type %s: saved name %q is already the saved name of %s (%s); give one of them another name=",
					b.typ, b.name, a.typ, rel(a.pos.String()))})
			}
		}
	}
	return errs
}

// packageSaved returns the saved names of the annotated types of tp, a
// package outside the run, found from its type information and its source;
// types whose saved name is wrong are left to that package's generator.
func (a *annotations) packageSaved(fset *token.FileSet, tp *types.Package) []savedEntry {
	var out []savedEntry
	scope := tp.Scope()
	for _, n := range scope.Names() {
		obj, ok := scope.Lookup(n).(*types.TypeName)
		if !ok || obj.IsAlias() || !a.isAnnotated(fset, obj) {
			continue
		}
		if name, msg := a.savedName(fset, obj); msg == "" {
			out = append(out, savedEntry{name: name, typ: goName(obj), pkg: tp.Path(), pos: fset.Position(obj.Pos())})
		}
	}
	return out
}

// later reports whether position a sorts after b.
func later(a, b token.Position) bool {
	if a.Filename != b.Filename {
		return a.Filename > b.Filename
	}
	return a.Offset > b.Offset
}
