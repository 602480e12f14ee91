package pipelines

import "time"

// Topic names. Every topic minecart uses is declared in Topology below.
const (
	TopicDevices          = "minecart.devices"           // device registry, compacted, key = device id
	TopicTelemetryRaw     = "minecart.telemetry.raw"     // gateway -> ingest, key = vehicle id
	TopicTelemetryClean   = "minecart.telemetry.clean"   // ingest -> scoring, sink; key = vehicle id
	TopicIngestChangelog  = "minecart.ingest.changelog"  // ingest dedup state, compacted
	TopicDeadLetter       = "minecart.deadletter"        // every stage's rejects
	TopicScoringChangelog = "minecart.scoring.changelog" // open vehicle-day windows, compacted
	TopicLateEvents       = "minecart.scoring.late"      // events later than the grace period
	TopicScores           = "minecart.scores"            // daily scores + watermarks -> ledger, sink
	TopicLedgerRequests   = "minecart.ledger.requests"   // debits and adjustments -> ledger
	TopicLedgerChangelog  = "minecart.ledger.changelog"  // ledger's pending credits, compacted
	TopicLedgerBlocks     = "minecart.ledger.blocks"     // the book: signed blocks with their entries, kept forever
	TopicLedgerEntries    = "minecart.ledger.entries"    // one record per entry, with inclusion proof -> settlement, sink
	TopicLedgerPseudonyms = "minecart.ledger.pseudonyms" // sealed pseudonym keys, compacted, key = pseudonym
	TopicAccounts         = "minecart.accounts"          // vehicle -> owner bindings, compacted
	TopicCatalog          = "minecart.catalog"           // partner catalog, compacted
	TopicRedemptions      = "minecart.redemptions.requests"
	TopicSettlementLog    = "minecart.settlement.changelog" // balances, reservations, compacted
	TopicRedemptionStatus = "minecart.redemptions.status"   // every redemption state change
	TopicRewardCredits    = "minecart.rewards.credits"      // partners: one record per settled credit
	TopicPartnerAcks      = "minecart.partners.acks"        // partners -> minecart: fulfilment acks
	TopicStatements       = "minecart.settlement.statements"
	TopicCredentials      = "minecart.credentials"        // API callers' credentials (hashes only), compacted
	TopicTransfers        = "minecart.transfers.requests" // transfer batches and account flags -> settlement
)

// TopicLedgerCheckpoints holds the checkpoints published with their witness
// quorum (the ledger's signed note with the witnesses' cosignature lines),
// compacted, key = the tree size in 20 decimal digits.
const TopicLedgerCheckpoints = "minecart.ledger.checkpoints"

// The global replay check (docs/scoring.md, "Global replay check"):
// scoring writes each trip's fingerprint once per LSH band, keyed by the
// band's key, so fingerprints sharing a band meet on one partition; the
// replaycheck stage keeps per-band postings in its changelog and writes
// verdicts keyed by vehicle id, co-partitioned with the clean telemetry,
// which scoring reads as a second input.
const (
	TopicFingerprints         = "minecart.scoring.fingerprints"
	TopicReplayCheckChangelog = "minecart.replaycheck.changelog"
	TopicReplayVerdicts       = "minecart.scoring.verdicts"
)

// PartnerRedemptionsTopic is the topic of the orders partner must fulfil.
func PartnerRedemptionsTopic(partner string) string {
	return "minecart.partner." + partner + ".redemptions"
}

// PartnerCampaignsTopic is the topic of the bonuses partner's campaigns
// paid (CreditSettled, kind bonus; docs/campaigns.md).
func PartnerCampaignsTopic(partner string) string {
	return "minecart.partner." + partner + ".campaigns"
}

// TopicSpec declares one topic.
type TopicSpec struct {
	Name       string
	Partitions int32
	Compacted  bool
	Retention  time.Duration // 0 with Compacted false: kept forever (-1)
	Doc        string
}

// TelemetryPartitions is the partition count of the telemetry topics and
// of the changelogs co-partitioned with them: the unit of scale-out for
// ingest and scoring.
const TelemetryPartitions = 8

// Topology lists every topic, with which stage writes and reads it.
// Single-partition topics are the ones whose order matters across all keys
// (the ledger is one Merkle tree; settlement guards balances in one place).
var Topology = []TopicSpec{
	{TopicDevices, 1, true, 0, "gateway/CLI write; gateway, ingest read (whole table)"},
	{TopicTelemetryRaw, TelemetryPartitions, false, 7 * 24 * time.Hour, "gateway writes; ingest reads"},
	{TopicIngestChangelog, TelemetryPartitions, true, 0, "ingest's dedup state"},
	{TopicTelemetryClean, TelemetryPartitions, false, 7 * 24 * time.Hour, "ingest writes; scoring, sink read"},
	{TopicDeadLetter, 1, false, 30 * 24 * time.Hour, "every stage writes; operators, sink read"},
	{TopicScoringChangelog, TelemetryPartitions, true, 0, "scoring's window state"},
	{TopicLateEvents, TelemetryPartitions, false, 30 * 24 * time.Hour, "scoring writes events past the grace period"},
	{TopicFingerprints, TelemetryPartitions, false, 7 * 24 * time.Hour, "scoring writes trip fingerprints by LSH band; replaycheck reads"},
	{TopicReplayCheckChangelog, TelemetryPartitions, true, 0, "replaycheck's band postings"},
	{TopicReplayVerdicts, TelemetryPartitions, false, 30 * 24 * time.Hour, "replaycheck writes replay verdicts (key vehicle id); scoring reads"},
	{TopicScores, 1, false, 0, "scoring writes scores and watermarks; ledger, sink read"},
	{TopicLedgerRequests, 1, false, 0, "settlement (debits) and CLI (adjustments) write; ledger reads"},
	{TopicLedgerChangelog, 1, true, 0, "ledger's pending credits"},
	{TopicLedgerBlocks, 1, false, 0, "ledger writes the signed blocks; anyone reads from offset 0"},
	{TopicLedgerEntries, 1, false, 0, "ledger writes; settlement, sink read"},
	{TopicLedgerCheckpoints, 1, true, 0, "the ledger's publisher writes checkpoints cosigned by the witness quorum; proofs servers and anyone read"},
	{TopicLedgerPseudonyms, 1, true, 0, "ledger writes sealed pseudonym keys, erasure tombstones them; ledger, settlement, owner API, CLI read"},
	{TopicAccounts, 1, true, 0, "CLI writes; settlement reads"},
	{TopicCatalog, 1, true, 0, "CLI writes; settlement reads"},
	{TopicRedemptions, 1, false, 0, "HTTP API writes; settlement reads"},
	{TopicSettlementLog, 1, true, 0, "settlement's balances and reservations"},
	{TopicRedemptionStatus, 1, false, 0, "settlement writes; sink, owners read"},
	{TopicRewardCredits, 1, false, 0, "settlement writes; partners read"},
	{TopicPartnerAcks, 1, false, 0, "partners write; settlement reads"},
	{TopicStatements, 1, false, 0, "settlement writes daily statements"},
	{TopicCredentials, 1, true, 0, "CLI and minecart run write; the owner and redemption APIs read"},
	{TopicTransfers, 1, false, 0, "transfer API and CLI write; settlement reads (decides every transfer)"},
}
