package sqsqueue

// Batches exposes batches to the external tests.
var Batches = batches
