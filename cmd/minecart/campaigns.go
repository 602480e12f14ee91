package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/services/campaign"
	campaignapi "github.com/minecart/minecart/services/campaign/api"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
)

// `minecart campaigns ...`: partners' campaigns (docs/campaigns.md). The
// partner's commands call the campaign HTTP API with the partner's token
// and sign with the partner's Ed25519 key, which never leaves its file;
// audit recomputes every bonus from the book.

func campaignsCommand(stdout io.Writer) *ff.Command {
	var kf daemon.Kafka // audit reads the blocks topic
	cmd := adminCommand("campaigns", "partner campaigns: signed rules that pay bonuses (docs/campaigns.md)", &kf)
	var baseURL, token, keyPath, partner, pubkey, nonce, file, ledgerPub string
	apiFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&baseURL, "url", "http://127.0.0.1:8080", "minecart's HTTP API")
		fs.StringVar(&token, "token", "", "bearer token: the partner's (operator's for register-key)")
	}
	keyFlag := func(fs *flag.FlagSet) {
		apiFlags(fs)
		fs.StringVar(&keyPath, "key", "", "the partner's Ed25519 private key file (campaigns keygen)")
	}
	subcommand := func(name, args, short string, flags func(fs *flag.FlagSet), exec func(ctx context.Context, pos []string) error) {
		cmd.Subcommands = append(cmd.Subcommands, newCommand(cmd, name, args, short, flags, exec))
	}
	one := func(pos []string, what string) (string, error) {
		if len(pos) != 1 {
			return "", usageError{fmt.Errorf("want one argument: %s", what)}
		}
		return pos[0], nil
	}
	call := func(ctx context.Context, method, path string, body, into any) error {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(baseURL, "/")+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
		}
		if into != nil {
			return json.Unmarshal(b, into)
		}
		return nil
	}
	loadKey := func() (ed25519.PrivateKey, error) {
		if keyPath == "" {
			return nil, usageError{errors.New("--key required")}
		}
		if _, err := os.Stat(keyPath); err != nil {
			return nil, fmt.Errorf("--key %s: %w (make one with: minecart campaigns keygen %s)", keyPath, err, keyPath)
		}
		return ledger.LoadOrCreateKey(keyPath)
	}

	subcommand("keygen", "FILE", "make a partner's Ed25519 key (FILE, mode 0600) and print its public key for register-key", nil,
		func(ctx context.Context, pos []string) error {
			path, err := one(pos, "the key file")
			if err != nil {
				return err
			}
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists: keygen never overwrites a key", path)
			}
			k, err := ledger.LoadOrCreateKey(path)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)))
			return nil
		})
	subcommand("register-key", "", "register or rotate a partner's public key (operators): a campaign entry of the book", func(fs *flag.FlagSet) {
		apiFlags(fs)
		fs.StringVar(&partner, "partner", "", "partner id")
		fs.StringVar(&pubkey, "pubkey", "", "the partner's public key: base64, or a file holding it")
	}, func(ctx context.Context, _ []string) error {
		pub := strings.TrimSpace(pubkey)
		if b, err := os.ReadFile(pubkey); err == nil {
			pub = strings.TrimSpace(string(b))
		}
		var a campaignapi.Accepted
		if err := call(ctx, "PUT", "/v1/partners/"+partner+"/key", campaignapi.KeyBody{PublicKey: pub}, &a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key of %s sent to the ledger: request %s\n", partner, a.RequestID)
		return nil
	})
	subcommand("submit", "DEFINITION.json", "sign a campaign definition with --key and submit it", keyFlag, func(ctx context.Context, pos []string) error {
		path, err := one(pos, "the definition (JSON: partner, name, title, rule, start, end, budget, cap)")
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var d campaign.Definition
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		r, err := campaign.Compile(d) // the checks the API and the ledger make, before signing
		if err != nil {
			return err
		}
		k, err := loadKey()
		if err != nil {
			return err
		}
		e := campaign.Submit(d, k, time.Now().UnixMilli())
		var a campaignapi.Accepted
		if err := call(ctx, "POST", "/v1/campaigns", campaignapi.SubmitBody{Definition: d, Signature: base64.StdEncoding.EncodeToString(e.Signature)}, &a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign %s submitted: rule hash %s, static cost %d..%d\n", a.Campaign, a.RuleHash, r.Estimate.Min, r.Estimate.Max)
		return nil
	})
	subcommand("list", "", "list campaigns (a partner's own; an operator's: all) with their budgets left", apiFlags, func(ctx context.Context, _ []string) error {
		var list []campaignapi.Campaign
		if err := call(ctx, "GET", "/v1/campaigns", nil, &list); err != nil {
			return err
		}
		rows := make([][]any, len(list))
		for i, c := range list {
			rows[i] = []any{c.ID, c.Status, c.Definition.Start + ".." + c.Definition.End, c.Definition.Budget, c.Spent, c.Left, c.Bonuses}
		}
		return printTable(stdout, "CAMPAIGN STATUS SCHEDULE BUDGET SPENT LEFT BONUSES", rows)
	})
	subcommand("show", "CAMPAIGN", "one campaign (JSON): definition, status, spent, budget left", apiFlags, func(ctx context.Context, pos []string) error {
		id, err := one(pos, "the campaign id <partner>/<name>")
		if err != nil {
			return err
		}
		var c campaignapi.Campaign
		if err := call(ctx, "GET", "/v1/campaigns/"+id, nil, &c); err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	})
	for _, action := range []string{ledger.ActionPause, ledger.ActionResume, ledger.ActionEnd} {
		subcommand(action, "CAMPAIGN", action+" a campaign (signed with --key)", func(fs *flag.FlagSet) {
			keyFlag(fs)
			fs.StringVar(&nonce, "nonce", "", "the request's nonce (default: the current Unix time in ns)")
		}, func(ctx context.Context, pos []string) error {
			id, err := one(pos, "the campaign id <partner>/<name>")
			if err != nil {
				return err
			}
			k, err := loadKey()
			if err != nil {
				return err
			}
			var c campaignapi.Campaign
			if err := call(ctx, "GET", "/v1/campaigns/"+id, nil, &c); err != nil {
				return err
			}
			h, err := hexBytes(c.RuleHash)
			if err != nil {
				return err
			}
			if nonce == "" {
				nonce = fmt.Sprint(time.Now().UnixNano())
			}
			e := campaign.Act(action, c.Definition.Partner, id, h, nonce, k, time.Now().UnixMilli())
			body := campaignapi.ActionBody{Nonce: nonce, Signature: base64.StdEncoding.EncodeToString(e.Signature)}
			if err := call(ctx, "POST", "/v1/campaigns/"+id+"/"+action, body, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s of %s sent to the ledger\n", action, id)
			return nil
		})
	}
	subcommand("audit", "", "recompute every campaign entry and bonus of the book (blocks topic or export) with no trust in the operator", func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "read an export file instead of the blocks topic")
		fs.StringVar(&ledgerPub, "pubkey", "", "ledger public key file")
	}, func(ctx context.Context, _ []string) error {
		if ledgerPub == "" {
			return usageError{errors.New("--pubkey required")}
		}
		pub, err := ledger.LoadPublicKey(ledgerPub)
		if err != nil {
			return err
		}
		var src ledger.BlockSource
		if file != "" {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			src = ledger.ReadExport(f)
		} else {
			kf.CreateTopics = false
			cfg, err := kf.Config(ctx, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				return err
			}
			if src, err = blocks.New(blocks.Config{Kafka: cfg}); err != nil {
				return err
			}
		}
		rep, err := campaign.Audit(ctx, src, pub)
		if err != nil {
			return fmt.Errorf("campaigns NOT verified: %w", err)
		}
		fmt.Fprintf(stdout, "campaigns verified: %d campaigns, %d bonuses, %d points paid\n", rep.Campaigns, rep.Bonuses, rep.Paid)
		for id, n := range rep.Spent {
			fmt.Fprintf(stdout, "  %s  %d\n", id, n)
		}
		return nil
	})
	return cmd
}

func hexBytes(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("rule hash %q: want 64 hex digits", s)
	}
	return b, nil
}
