# Manifold's error messages in English (en-US).
#
# The reference catalogue: every id here is one an error names in the code
# (`Error::with_message_id`), with the arguments it passes. The code's own English message
# is what an en-US client gets; these lines say the same and are the template that the
# other locales translate. docs/plugins.md, "Messages in the client's language".

## Signing in

auth-sign-in-required = Unauthenticated. Please sign in to continue.
auth-session-expired = Your session has expired. Please sign in again.
auth-user-gone = The user does not exist. Please sign in again.
auth-role-not-of-user = The role does not belong to the user
auth-wrong-credentials = The username/email or password is incorrect, please re-enter
auth-account-required = Please enter your username or email
# $seconds: how long to wait, at least 1
auth-too-many-attempts = Too many failed sign-in attempts; try again in { $seconds } seconds

## Permissions

acl-no-permission = No permissions

## What a request names

not-found = Not Found
# $key: the data source's key
data-source-not-found = data source { $key } does not exist
# $collection: the collection's name; $key: the data source's key
collection-not-found = collection { $collection } does not exist in data source { $key }

## Values and filters

# $path: where the value is (filter.age.$gt, values.title); $got: the value as JSON, cut
# at 60 characters; $expected: one of the keys below
value-type-mismatch = { $path }: expected { $expected ->
        [string] a string
        [integer] an integer
        [number] a number
        [decimal] a decimal number
        [boolean] a boolean
        [date] a date (YYYY-MM-DD)
        [datetime] an ISO-8601 date-time
        [datetime-no-tz] a date-time (YYYY-MM-DD HH:mm:ss)
        [time] a time (HH:mm:ss)
        [array] an array
        [uuid] a UUID
        [base64] base64 data
       *[other] { $expected }
    }, got { $got }
# $got: what was sent instead, as JSON
filter-not-object = Invalid filter: expected a JSON object, got { $got }
# $path: where in the filter; $operator: the operator, quoted; $supported: every operator
filter-unknown-operator = { $path }: unknown operator { $operator }; supported: { $supported }
# $operator: the operator, quoted
filter-unknown-date-operator = Unknown date operator { $operator }
# $path: where in the filter; $field: the field, quoted; $collection: its collection
filter-unknown-field = { $path }: unknown field { $field } in collection { $collection }
# $path: where in the filter; $operator: the operator; $kind: the data source's type
filter-operator-unsupported = { $path }: operator { $operator } is not supported by { $kind } sources

## Routing and guarded writes

# $method, $path: the request's
route-no-action = { $method } { $path } names no action
# $resource: the resource asked for; $action: the action; $key: the data source's key
route-no-resource = resource { $resource } does not exist
route-no-resource-in-source = resource { $resource } does not exist in data source { $key }
route-no-action-of-resource = resource { $resource } has no action { $action }
route-no-action-of-resource-in-source = resource { $resource } has no action { $action } in data source { $key }
# $filter: the filter as JSON; $action: update or destroy
filter-without-condition = Invalid filter: { $filter } has no condition; to { $action } by key use filterByTk alone
filter-required = to do { $action } action, filter or filterByTk is required
