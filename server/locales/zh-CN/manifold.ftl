# Manifold 的错误信息：简体中文（zh-CN）。
# The ids and arguments are those of ../en-US/manifold.ftl, which documents them.

## 登录

auth-sign-in-required = 尚未登录，请登录后继续。
auth-session-expired = 您的登录已过期，请重新登录。
auth-user-gone = 该用户不存在，请重新登录。
auth-role-not-of-user = 该角色不属于当前用户
auth-wrong-credentials = 用户名/邮箱或密码错误，请重新输入
auth-account-required = 请输入用户名或邮箱
auth-too-many-attempts = 登录失败次数过多，请在 { $seconds } 秒后重试

## 权限

acl-no-permission = 没有权限

## 请求所指的对象

not-found = 未找到
data-source-not-found = 数据源 { $key } 不存在
collection-not-found = 数据源 { $key } 中不存在数据表 { $collection }

## 值与筛选条件

value-type-mismatch = { $path }：应为{ $expected ->
        [string] 字符串
        [integer] 整数
        [number] 数字
        [decimal] 十进制数
        [boolean] 布尔值
        [date] 日期（YYYY-MM-DD）
        [datetime] ISO-8601 日期时间
        [datetime-no-tz] 日期时间（YYYY-MM-DD HH:mm:ss）
        [time] 时间（HH:mm:ss）
        [array] 数组
        [uuid] UUID
        [base64] base64 数据
       *[other] { $expected }
    }，实际为 { $got }
filter-not-object = 筛选条件无效：应为 JSON 对象，实际为 { $got }
filter-unknown-operator = { $path }：未知的运算符 { $operator }；支持的运算符：{ $supported }
filter-unknown-date-operator = 未知的日期运算符 { $operator }
filter-unknown-field = { $path }：数据表 { $collection } 中没有字段 { $field }
filter-operator-unsupported = { $path }：{ $kind } 类型的数据源不支持运算符 { $operator }

## 路由与受保护的写入

route-no-action = { $method } { $path } 没有对应的操作
route-no-resource = 资源 { $resource } 不存在
route-no-resource-in-source = 数据源 { $key } 中不存在资源 { $resource }
route-no-action-of-resource = 资源 { $resource } 没有操作 { $action }
route-no-action-of-resource-in-source = 数据源 { $key } 中的资源 { $resource } 没有操作 { $action }
filter-without-condition = 无效的筛选条件：{ $filter } 不含任何条件；如需按主键执行 { $action }，请只使用 filterByTk
filter-required = 执行 { $action } 操作需要 filter 或 filterByTk
