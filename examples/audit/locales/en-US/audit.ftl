# The audit plugin's messages. Ids start with the plugin's name, so they cannot clash.
# $resource: the collection the request named
audit-history-needs-key = { $resource }:history needs filterByTk, the key of one record
