# Les messages d’erreur de Manifold en français (fr-FR).
# The ids and arguments are those of ../en-US/manifold.ftl, which documents them.

## Connexion

auth-sign-in-required = Non authentifié. Veuillez vous connecter pour continuer.
auth-session-expired = Votre session a expiré. Veuillez vous reconnecter.
auth-user-gone = L’utilisateur n’existe pas. Veuillez vous reconnecter.
auth-role-not-of-user = Ce rôle n’appartient pas à l’utilisateur
auth-wrong-credentials = Le nom d’utilisateur, l’adresse e-mail ou le mot de passe est incorrect, veuillez le saisir à nouveau
auth-account-required = Veuillez saisir votre nom d’utilisateur ou votre adresse e-mail
auth-too-many-attempts = Trop de tentatives de connexion échouées ; réessayez dans { $seconds ->
        [one] { $seconds } seconde
       *[other] { $seconds } secondes
    }

## Autorisations

acl-no-permission = Vous n’avez pas l’autorisation requise

## Ce que nomme la requête

not-found = Introuvable
data-source-not-found = la source de données { $key } n’existe pas
collection-not-found = la collection { $collection } n’existe pas dans la source de données { $key }

## Valeurs et filtres

value-type-mismatch = { $path } : valeur attendue : { $expected ->
        [string] une chaîne de caractères
        [integer] un nombre entier
        [number] un nombre
        [decimal] un nombre décimal
        [boolean] un booléen
        [date] une date (AAAA-MM-JJ)
        [datetime] une date et heure ISO 8601
        [datetime-no-tz] une date et heure (AAAA-MM-JJ HH:mm:ss)
        [time] une heure (HH:mm:ss)
        [array] un tableau
        [uuid] un UUID
        [base64] des données en base64
       *[other] { $expected }
    }, reçu : { $got }
filter-not-object = Filtre invalide : un objet JSON est attendu, reçu : { $got }
filter-unknown-operator = { $path } : opérateur inconnu { $operator } ; opérateurs pris en charge : { $supported }
filter-unknown-date-operator = Opérateur de date inconnu { $operator }
filter-unknown-field = { $path } : champ inconnu { $field } dans la collection { $collection }
filter-operator-unsupported = { $path } : l’opérateur { $operator } n’est pas pris en charge par les sources de type { $kind }

## Routage et écritures protégées

route-no-action = { $method } { $path } ne désigne aucune action
route-no-resource = la ressource { $resource } n’existe pas
route-no-resource-in-source = la ressource { $resource } n’existe pas dans la source de données { $key }
route-no-action-of-resource = la ressource { $resource } n’a pas d’action { $action }
route-no-action-of-resource-in-source = la ressource { $resource } n’a pas d’action { $action } dans la source de données { $key }
filter-without-condition = Filtre invalide : { $filter } ne contient aucune condition ; pour { $action } par clé, utilisez filterByTk seul
filter-required = l’action { $action } exige filter ou filterByTk
