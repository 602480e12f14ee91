// Package registry connects minecart's Serde to a Confluent-compatible
// Schema Registry over its HTTP API (franz-go's sr client). It is the only
// part of schemas that needs a registry client, so the record codecs and
// everything built on them (domain packages, the kafka-go partner example)
// link no Kafka client.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/minecart/minecart/schemas"
)

// Config configures New.
type Config struct {
	// URL is the registry's URL, or a comma-separated list of its URLs.
	URL string
	// User and Password are HTTP basic-auth credentials, if it needs them.
	User, Password string
	// HTTPClient is the client for registry requests (default: sr's).
	HTTPClient *http.Client
}

// Validate reports a configuration New cannot use.
func (c Config) Validate() error {
	urls := c.urls()
	if len(urls) == 0 {
		return errors.New("registry: no url")
	}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("registry url: %w", err)
		}
		if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
			return fmt.Errorf("registry url %q: want http(s)://host[:port]", u)
		}
	}
	return nil
}

func (c Config) urls() []string {
	var urls []string
	for u := range strings.SplitSeq(c.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// Client is a schemas.Registry over a Schema Registry's HTTP API.
type Client struct{ cl *sr.Client }

var _ schemas.Registry = (*Client)(nil)

// New returns a client of the registry (it dials on first use).
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []sr.ClientOpt{sr.URLs(cfg.urls()...), sr.UserAgent("minecart")}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, sr.BasicAuth(cfg.User, cfg.Password))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, sr.HTTPClient(cfg.HTTPClient))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	return &Client{cl: cl}, nil
}

// Register registers text, an Avro schema, under subject.
func (c *Client) Register(ctx context.Context, subject, text string) (int, error) {
	return c.cl.RegisterSchema(ctx, subject, sr.Schema{Schema: text, Type: sr.TypeAvro}, -1, -1)
}

// Schema returns the Avro schema registered as id. An id the registry does
// not know, or a schema that is not self-contained Avro, is an error
// wrapping schemas.ErrUnknownSchema.
func (c *Client) Schema(ctx context.Context, id uint32) (string, error) {
	s, err := c.cl.SchemaByID(ctx, int(id))
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.ErrorCode == sr.ErrSchemaNotFound.Code) {
			return "", fmt.Errorf("%w: not in the registry", schemas.ErrUnknownSchema)
		}
		return "", err
	}
	if s.Type != sr.TypeAvro || len(s.References) > 0 {
		return "", fmt.Errorf("%w: a %s schema with %d references; want self-contained Avro",
			schemas.ErrUnknownSchema, s.Type, len(s.References))
	}
	return s.Schema, nil
}

// NewSerde returns a Serde writing the Confluent wire format with the
// registry of cfg (every embedded schema registered; ctx bounds that), or,
// with no URL in cfg, the single-object Serde.
func NewSerde(ctx context.Context, cfg Config) (*schemas.Serde, error) {
	if len(cfg.urls()) == 0 {
		if cfg.User != "" || cfg.Password != "" {
			return nil, errors.New("registry credentials without a registry url")
		}
		return schemas.NewSerde(ctx, schemas.SerdeConfig{})
	}
	cl, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return schemas.NewSerde(ctx, schemas.SerdeConfig{Registry: cl})
}
