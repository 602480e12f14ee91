package proofs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/minecart/minecart/services/ledger"
)

// Client is a Prover over a Server's HTTP API. Unlike the Server it
// verifies nothing: its answers are what the URL answers.
type Client struct {
	c    *http.Client
	base string
}

var _ Prover = (*Client)(nil)

// NewClient returns a client of the proof API at baseURL (e.g.
// "http://ledger:8084"); a nil c means http.DefaultClient.
func NewClient(c *http.Client, baseURL string) *Client {
	if c == nil {
		c = http.DefaultClient
	}
	return &Client{c: c, base: strings.TrimSuffix(baseURL, "/")}
}

// Head returns the Server's verified head.
func (c *Client) Head(ctx context.Context) (Head, error) {
	var h Head
	return h, c.get(ctx, "/v1/ledger/head", &h)
}

// InclusionProof proves leaf index leaf in the tree of treeSize entries
// (0: the head's), by index only (GET /v1/ledger/leaves/{index}/proof).
func (c *Client) InclusionProof(ctx context.Context, leaf, treeSize uint64) (Proof, error) {
	path := "/v1/ledger/leaves/" + strconv.FormatUint(leaf, 10) + "/proof"
	if treeSize > 0 {
		path += "?tree_size=" + strconv.FormatUint(treeSize, 10)
	}
	var p Proof
	return p, c.get(ctx, path, &p)
}

// ConsistencyProof proves the tree of second entries extends the tree of
// first entries.
func (c *Client) ConsistencyProof(ctx context.Context, first, second uint64) (Consistency, error) {
	q := url.Values{"first": {strconv.FormatUint(first, 10)}, "second": {strconv.FormatUint(second, 10)}}
	var p Consistency
	return p, c.get(ctx, "/v1/ledger/consistency?"+q.Encode(), &p)
}

// get decodes the JSON answer to GET path into v; an error answer becomes
// an error wrapping ledger.ErrNotFound (404) or ErrBadRequest (400).
func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("ledger proofs: %w", err)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return fmt.Errorf("ledger proofs: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("ledger proofs: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(body))
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return &requestError{ledger.ErrNotFound, e.Error}
		case http.StatusBadRequest:
			return &requestError{ErrBadRequest, e.Error}
		}
		return fmt.Errorf("ledger proofs: GET %s: status %d: %s", path, resp.StatusCode, e.Error)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("ledger proofs: GET %s: %w", path, err)
	}
	return nil
}
