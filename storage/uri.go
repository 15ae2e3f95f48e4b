package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Location is a parsed image or store URI.
type Location struct {
	// Scheme is "file", "s3", or "" for a bare image name, which is resolved
	// against the default store or the one given with --store.
	Scheme string
	// Dir is the absolute directory of a file store.
	Dir string
	// Bucket and Prefix (no leading or trailing slash, maybe empty) locate
	// an S3 store.
	Bucket, Prefix string
	// Name is the image name; empty in a store URI.
	Name string
}

// validName accepts image names of 1 to 128 characters from [A-Za-z0-9._-]
// starting with a letter or digit.
func validName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("image name %q: must be 1 to 128 characters: %w", name, ErrInvalidArgument)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("image name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit: %w", name, ErrInvalidArgument)
		}
	}
	return nil
}

// DefaultStoreDir is the directory of the default store:
// $XDG_DATA_HOME/snap/images, else ~/.local/share/snap/images.
func DefaultStoreDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "snap", "images"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default image store: %w (set XDG_DATA_HOME or --store)", err)
	}
	return filepath.Join(home, ".local", "share", "snap", "images"), nil
}

// ParseURI parses an image URI:
//
//	file:///abs/dir/NAME   image NAME in the file store /abs/dir
//	/abs/dir/NAME, ./NAME  a bare path (anything containing '/'), likewise
//	s3://bucket/NAME       image NAME in the bucket's top level
//	s3://bucket/pre/fix/NAME
//	NAME                   a bare name (no '/'): image NAME in the default
//	                       store, or in the store given by --store/SNAP_STORE
func ParseURI(uri string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("image URI %q: %s: %w", uri, why, ErrInvalidArgument)
	}
	switch {
	case uri == "":
		return bad("empty")
	case strings.HasPrefix(uri, "s3://"):
		loc, err := parseS3(uri)
		if err != nil {
			return Location{}, err
		}
		i := strings.LastIndexByte(loc.Prefix, '/')
		loc.Name = loc.Prefix[i+1:]
		loc.Prefix = strings.Trim(loc.Prefix[:max(i, 0)], "/")
		if loc.Name == "" {
			return bad("no image name after the bucket (s3://bucket/prefix/NAME)")
		}
		return loc, validName(loc.Name)
	case strings.HasPrefix(uri, "file:"):
		dir, err := parseFileURI(uri)
		if err != nil {
			return Location{}, err
		}
		loc := Location{Scheme: "file", Dir: filepath.Dir(dir), Name: filepath.Base(dir)}
		return loc, validName(loc.Name)
	case strings.Contains(uri, "://"):
		return bad("unknown scheme (use file://, s3:// or a path)")
	case !strings.Contains(uri, "/"):
		return Location{Name: uri}, validName(uri)
	}
	abs, err := filepath.Abs(uri)
	if err != nil {
		return bad(err.Error())
	}
	loc := Location{Scheme: "file", Dir: filepath.Dir(abs), Name: filepath.Base(abs)}
	return loc, validName(loc.Name)
}

func parseFileURI(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("URI %q: %v: %w", uri, err, ErrInvalidArgument)
	}
	if u.Host != "" || !path.IsAbs(u.Path) {
		return "", fmt.Errorf("URI %q: want file:///absolute/path: %w", uri, ErrInvalidArgument)
	}
	return filepath.Clean(u.Path), nil
}

func parseS3(uri string) (Location, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, fmt.Errorf("URI %q: %v: %w", uri, err, ErrInvalidArgument)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return Location{}, fmt.Errorf("URI %q: want s3://bucket/prefix: %w", uri, ErrInvalidArgument)
	}
	p := strings.Trim(u.Path, "/")
	for _, seg := range strings.Split(p, "/") {
		if p != "" && (seg == "" || seg == "." || seg == "..") {
			return Location{}, fmt.Errorf("URI %q: empty, '.' or '..' path segment: %w", uri, ErrInvalidArgument)
		}
	}
	return Location{Scheme: "s3", Bucket: u.Host, Prefix: p}, nil
}

// ParseStoreURI parses a store URI: "" (the default store), file:///dir, a
// bare path (relative paths are made absolute), or s3://bucket[/prefix].
func ParseStoreURI(uri string) (Location, error) {
	switch {
	case uri == "":
		dir, err := DefaultStoreDir()
		return Location{Scheme: "file", Dir: dir}, err
	case strings.HasPrefix(uri, "s3://"):
		return parseS3(uri)
	case strings.HasPrefix(uri, "file:"):
		dir, err := parseFileURI(uri)
		return Location{Scheme: "file", Dir: dir}, err
	case strings.Contains(uri, "://"):
		return Location{}, fmt.Errorf("store URI %q: unknown scheme (use file://, s3:// or a path): %w", uri, ErrInvalidArgument)
	}
	abs, err := filepath.Abs(uri)
	if err != nil {
		return Location{}, fmt.Errorf("store URI %q: %v: %w", uri, err, ErrInvalidArgument)
	}
	return Location{Scheme: "file", Dir: abs}, nil
}

// Open opens the store at storeURI; "" is the default store
// (DefaultStoreDir). S3 stores take their endpoint and credentials from the
// environment (see S3ConfigFromEnv).
func Open(ctx context.Context, storeURI string) (Store, error) {
	loc, err := ParseStoreURI(storeURI)
	if err != nil {
		return nil, err
	}
	return openLocation(ctx, loc)
}

func openLocation(ctx context.Context, loc Location) (Store, error) {
	if loc.Scheme == "s3" {
		cfg, err := S3ConfigFromEnv()
		if err != nil {
			return nil, err
		}
		cfg.Bucket, cfg.Prefix = loc.Bucket, loc.Prefix
		return NewS3Store(ctx, cfg)
	}
	return NewFileStore(loc.Dir)
}

// Locate resolves an image URI to its store and name. A bare name is looked
// up in the store at storeURI ("" for the default store); any other form
// names its store itself and storeURI is ignored. `snap save ID --to NAME`
// therefore writes NAME into the --store store, and `--to /dir/NAME` or
// `--to s3://bucket/NAME` elsewhere.
func Locate(ctx context.Context, imageURI, storeURI string) (Store, string, error) {
	loc, err := ParseURI(imageURI)
	if err != nil {
		return nil, "", err
	}
	if loc.Scheme == "" {
		s, err := Open(ctx, storeURI)
		return s, loc.Name, err
	}
	s, err := openLocation(ctx, loc)
	return s, loc.Name, err
}

// OpenImage opens the image at imageURI (see Locate).
func OpenImage(ctx context.Context, imageURI, storeURI string) (*Image, error) {
	s, name, err := Locate(ctx, imageURI, storeURI)
	if err != nil {
		return nil, err
	}
	return s.Open(ctx, name)
}

// CreateImage starts writing the image at imageURI (see Locate).
func CreateImage(ctx context.Context, imageURI, storeURI string, opts CreateOptions) (*Writer, error) {
	s, name, err := Locate(ctx, imageURI, storeURI)
	if err != nil {
		return nil, err
	}
	return s.Create(ctx, name, opts)
}
