// The batched, journaled record writer shared by accounting (gw_acc, gw_missed_calls, gw_cdr) and AMI (gw_ami_cdr).
export { openBatchWriter, type BatchWriter, type BatchWriterOptions, type FsyncPolicy, type WriterStats } from './writer.js';
export { defineTable, recKey, sqlDateTime, clip, type TableSpec, type Row, type SqlValue } from './spec.js';
