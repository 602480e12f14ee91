// Command partner-example is a minecart partner's order consumer written
// with segmentio/kafka-go: it verifies every order's ledger proof,
// fulfils it and acknowledges it. See README.md for its flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v4"
	"github.com/peterbourgon/ff/v4/ffhelp"

	"github.com/minecart/minecart/internal/envflag"

	"github.com/minecart/minecart/cmd/partner-example/partner"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/settlement"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "partner-example:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("partner-example", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	name := fs.String("partner", "", "partner id (reads minecart.partner.<id>.redemptions)")
	keyFile := fs.String("ledger-key", "", "file with the ledger's public key (Ed25519, as minecart ledger key prints it)")
	user := fs.String("user", "", "SASL/SCRAM-SHA-512 user (default partner-<id> when -password is set)")
	pass := fs.String("password", "", "SASL/SCRAM-SHA-512 password (empty: no SASL)")
	credits := fs.Bool("credits", false, "also follow and verify minecart.rewards.credits")
	policyFile := fs.String("policy", "", "witness policy file: check the cosigned checkpoints published in the partner's topics, accept only those cosigned by its quorum that extend the last one accepted (docs/partners.md)")
	cpTopic := fs.Bool("checkpoints-topic", false, "with -policy: also follow minecart.ledger.checkpoints (the compacted topic of every publication)")
	stateFile := fs.String("checkpoint-state", "", "with -policy: file keeping the last checkpoint accepted (default partner-<id>.checkpoint)")
	ledgerURL := fs.String("ledger-url", "http://127.0.0.1:8080", "with -policy: the ledger's HTTP address, for consistency proofs (GET /v1/ledger/consistency; checked, not trusted)")
	credFile := fs.String("credentials", "", "read -user and -password of partner-<id> from this credentials file (minecart run: <data-dir>/kafka/credentials.json)")
	ffs := ff.NewFlagSetFrom(fs.Name(), fs)
	err := envflag.Parse(ffs, args, "MINECART_PARTNER")
	if errors.Is(err, ff.ErrHelp) || (err == nil && (*name == "" || *keyFile == "")) {
		fmt.Fprint(os.Stderr, ffhelp.Flags(ffs, "partner-example -partner ID -ledger-key FILE [FLAGS]"))
	}
	if err != nil {
		return err
	}
	if *name == "" || *keyFile == "" {
		return fmt.Errorf("-partner and -ledger-key are required")
	}
	pub, err := ledger.LoadPublicKey(*keyFile)
	if err != nil {
		return err
	}
	if *credFile != "" && *pass == "" {
		if *user, *pass, err = fromCredentials(*credFile, *name); err != nil {
			return err
		}
	}
	if *pass != "" && *user == "" {
		*user = settlement.PartnerUser(*name)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var cps *partner.Checkpoints
	if *policyFile != "" {
		text, err := os.ReadFile(*policyFile)
		if err != nil {
			return err
		}
		p, err := ledger.ParsePolicy(text)
		if err != nil {
			return err
		}
		if *stateFile == "" {
			*stateFile = "partner-" + *name + ".checkpoint"
		}
		cps = &partner.Checkpoints{Policy: p, LedgerKey: pub, StatePath: *stateFile, Prove: partner.ConsistencyFrom(strings.TrimSuffix(*ledgerURL, "/"), nil)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var orders, credited int
	return partner.Run(ctx, partner.Config{
		Brokers: strings.Split(*brokers, ","), Partner: *name, LedgerKey: pub, User: *user, Password: *pass,
		Credits: *credits, Logger: log, Checkpoints: cps, CheckpointsTopic: *cpTopic,
		OnOrder: func(o partner.Order, err error) {
			orders++
			if err != nil {
				log.Error("order refused", "redemption", o.RedemptionID, "err", err)
				return
			}
			log.Info("order fulfilled", "redemption", o.RedemptionID, "owner", o.Owner, "item", o.ItemID, "quantity", o.Quantity,
				"points", o.Points, "leaf", o.Debit.LeafIndex, "tree_size", o.Debit.TreeSize, "orders", orders)
		},
		OnCredit: func(c avro.CreditSettled, err error) {
			credited++
			log.Info("credit", "account", c.Account, "vehicle", c.VehicleID, "day", c.Day, "points", c.Points,
				"leaf", c.Proof.LeafIndex, "verified", err == nil, "credits", credited)
		},
	})
}

// fromCredentials reads the user and password of partner id from a
// credentials file of the embedded broker (docs/security.md): JSON
// {"mechanism": "SCRAM-SHA-512", "users": [{"name", "password", "role",
// "partner"}]}, the partner's entry having role "partner".
func fromCredentials(path, id string) (user, pass string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("-credentials: %w", err)
	}
	var f struct {
		Mechanism string `json:"mechanism"`
		Users     []struct {
			Name     string `json:"name"`
			Password string `json:"password"`
			Role     string `json:"role"`
			Partner  string `json:"partner"`
		} `json:"users"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", "", fmt.Errorf("-credentials %s: %w", path, err)
	}
	if f.Mechanism != "SCRAM-SHA-512" {
		return "", "", fmt.Errorf("-credentials %s: mechanism %q, want SCRAM-SHA-512", path, f.Mechanism)
	}
	for _, u := range f.Users {
		if u.Role == "partner" && u.Partner == id {
			return u.Name, u.Password, nil
		}
	}
	return "", "", fmt.Errorf("-credentials %s: no partner %q", path, id)
}
