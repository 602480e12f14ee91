package stack

import (
	"crypto/ed25519"
	"fmt"

	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/web"
)

// mountWeb serves the web faces (services/web): the owner app at /, the
// block explorer at /explorer, the operator console at /console and their
// assets under /assets/, with the vehicles of an owner from the bindings
// table and the catalogue from settlement's state.
func (s *Stack) mountWeb(mux *auth.Mux) error {
	h, err := web.NewHandler(web.Config{
		Auth: s.Auth, LedgerKey: s.LedgerKey.Public().(ed25519.PublicKey),
		Vehicles: web.BoundVehicles(s.bindings, s.Serde), Catalog: web.SettlementCatalog(s.state),
		Metrics: s.Registry, Logger: s.cfg.Logger, Transfers: true, // POST /v1/transfers is mounted (docs/economy.md)
		DeadLetters: web.DeadLetterTail(func() (web.TopicReader, error) { return kafka.NewReader(s.Pipelines) }, s.Serde),
	})
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	for _, p := range web.Mounts {
		mux.Mount(p, h)
	}
	return nil
}
