package storage

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is host[:port]; Secure selects https.
	Endpoint string
	Secure   bool
	// Region is optional (AWS_REGION).
	Region string
	// AccessKey and SecretKey (and SessionToken) are static credentials; if
	// AccessKey is empty the usual chain is used: AWS_* and MINIO_*
	// variables, then ~/.aws/credentials.
	AccessKey, SecretKey, SessionToken string
	// Bucket must exist; Prefix may be empty.
	Bucket, Prefix string
	// PartSize is the multipart part size (default 16 MiB) and Threads the
	// number of parts uploaded in parallel (default 4). Memory in flight per
	// blob upload is about PartSize×Threads.
	PartSize uint64
	Threads  int
	// MaxRetries bounds the retries of one request on transient errors
	// (with exponential backoff); default 5.
	MaxRetries int
	// Deadlines of one request, so that a server that stops answering (a
	// stopped process still accepts connections) fails a request instead
	// of holding it forever: DialTimeout bounds connecting (default
	// 10 s), HeaderTimeout the wait for a response's headers once the
	// request is sent (default 30 s), IdleTimeout any read or write on a
	// connection that moves no byte (default 30 s; it bounds a part
	// upload or a ranged read that stalls midway). A whole save is bounded
	// by its context (snap save --timeout).
	DialTimeout, HeaderTimeout, IdleTimeout time.Duration
	// StaleAge is the age past which a new write removes the store's
	// incomplete multipart uploads, certainly those of killed writers
	// (default DefaultStaleAge); snap prune removes younger ones.
	StaleAge time.Duration
}

// DefaultStaleAge is how old a leftover of a killed writer must be for a
// new write to the same store to remove it: no save takes a day.
const DefaultStaleAge = 24 * time.Hour

// Default request deadlines of S3Config.
const (
	DefaultS3DialTimeout   = 10 * time.Second
	DefaultS3HeaderTimeout = 30 * time.Second
	DefaultS3IdleTimeout   = 30 * time.Second
)

// S3ConfigFromEnv reads the endpoint from SNAP_S3_ENDPOINT (a URL: http://
// disables TLS; a bare host:port uses TLS; default s3.amazonaws.com) and the
// region from AWS_REGION or AWS_DEFAULT_REGION. Credentials come from the
// chain (see S3Config).
func S3ConfigFromEnv() (S3Config, error) {
	cfg := S3Config{Endpoint: "s3.amazonaws.com", Secure: true}
	if ep := os.Getenv("SNAP_S3_ENDPOINT"); ep != "" {
		switch {
		case strings.HasPrefix(ep, "http://"):
			cfg.Endpoint, cfg.Secure = strings.TrimPrefix(ep, "http://"), false
		case strings.HasPrefix(ep, "https://"):
			cfg.Endpoint = strings.TrimPrefix(ep, "https://")
		default:
			cfg.Endpoint = ep
		}
		cfg.Endpoint = strings.TrimSuffix(cfg.Endpoint, "/")
		if cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "/") {
			return cfg, fmt.Errorf("SNAP_S3_ENDPOINT %q: want http(s)://host[:port]: %w", ep, ErrInvalidArgument)
		}
	}
	cfg.Region = os.Getenv("AWS_REGION")
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	return cfg, nil
}
