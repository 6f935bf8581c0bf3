audit-history-needs-key = { $resource }:history 需要 filterByTk，即一条记录的主键
