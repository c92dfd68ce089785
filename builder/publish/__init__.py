"""Stage 4, publish: a built raw image into EBS snapshots and AMIs (boto3)."""
