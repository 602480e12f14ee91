package schemas

// Full Avro names of the records on minecart's topics. Each has a file
// schemas/<name without the "minecart." prefix, dots as underscores>.avsc.
const (
	TelemetryEvent    = "minecart.telemetry.Event"          // raw and clean telemetry topics
	TelemetryBatch    = "minecart.telemetry.Batch"          // gateway request body as avro/binary
	TimeMark          = "minecart.telemetry.TimeMark"       // raw and clean telemetry topics: a gateway's time mark (header kind=mark)
	Device            = "minecart.devices.Device"           // device registry (compacted)
	DeadLetter        = "minecart.DeadLetter"               // dead-letter topic
	DailyScore        = "minecart.scoring.DailyScore"       // scores topic
	Watermark         = "minecart.scoring.Watermark"        // scores topic: a scoring task's closed-through mark
	LateEvent         = "minecart.scoring.LateEvent"        // late-events topic
	LedgerEntry       = "minecart.ledger.Entry"             // entries topic
	LedgerBlock       = "minecart.ledger.Block"             // blocks topic (the book)
	DebitRequest      = "minecart.ledger.DebitRequest"      // ledger requests topic
	TransferRequest   = "minecart.ledger.TransferRequest"   // ledger requests topic: a transfer entry settlement decided
	TransferBatch     = "minecart.settlement.TransferBatch" // transfer requests topic
	AccountFlags      = "minecart.settlement.AccountFlags"  // transfer requests topic
	CampaignRequest   = "minecart.ledger.CampaignRequest"   // ledger requests topic: campaign actions (docs/campaigns.md)
	Pseudonym         = "minecart.ledger.Pseudonym"         // pseudonyms topic (compacted): a sealed pseudonym key
	AccountBinding    = "minecart.settlement.AccountBinding"
	CatalogItem       = "minecart.settlement.CatalogItem"
	RedemptionRequest = "minecart.settlement.RedemptionRequest"
	Redemption        = "minecart.settlement.Redemption" // status changes; partner redemption topics
	CreditSettled     = "minecart.settlement.CreditSettled"
	PartnerAck        = "minecart.settlement.PartnerAck"
	Statement         = "minecart.settlement.Statement"
	Credential        = "minecart.auth.Credential" // credentials topic (compacted)
	Sealed            = "minecart.shred.Sealed"    // topics kept forever: a record sealed under its identity's key (docs/privacy.md)
)
