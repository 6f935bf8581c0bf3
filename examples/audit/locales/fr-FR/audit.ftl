audit-history-needs-key = { $resource }:history exige filterByTk, la clé d’un enregistrement
