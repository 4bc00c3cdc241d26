using System.Text;
using RaftKv.Contracts;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>Checks a POST /txn body; the first problem is named by its path (compare[0].target, success[2].value, …).</summary>
internal static class TxnRequests
{
    public static (KvTxn? Txn, ProblemResponse? Problem) Validate(TxnRequest request, KvOptions settings)
    {
        var compares = new List<KvCompare>();
        var list = request.Compare ?? [];
        if (list.Count > KvTxn.MaxOperations)
        {
            return Invalid(400, "compare", $"{list.Count} comparisons; at most {KvTxn.MaxOperations}");
        }
        for (var i = 0; i < list.Count; i++)
        {
            var (compare, problem) = Compare(list[i], $"compare[{i}]", settings);
            if (problem is not null)
            {
                return (null, problem);
            }
            compares.Add(compare!);
        }
        var branches = new List<List<KvTxnOp>>();
        foreach (var (name, branch) in new[] { ("success", request.Success ?? []), ("failure", request.Failure ?? []) })
        {
            if (branch.Count > KvTxn.MaxOperations)
            {
                return Invalid(400, name, $"{branch.Count} operations; at most {KvTxn.MaxOperations}");
            }
            var ops = new List<KvTxnOp>();
            for (var i = 0; i < branch.Count; i++)
            {
                var (op, problem) = Operation(branch[i], $"{name}[{i}]", settings);
                if (problem is not null)
                {
                    return (null, problem);
                }
                ops.Add(op!);
            }
            branches.Add(ops);
        }
        if (compares.Count == 0 && branches.All(b => b.Count == 0))
        {
            return Invalid(400, "body", "a transaction needs a comparison or an operation");
        }
        if (KvRequests.SessionProblem(request.ClientId, request.Seq) is { } session)
        {
            return (null, session);
        }
        return (new KvTxn(compares, branches[0], branches[1], request.ClientId, request.Seq ?? 0), null);
    }

    /// <summary>True if the transaction only reads (no PUT or DELETE in either branch): any token with the read role may run it.</summary>
    public static bool ReadsOnly(KvTxn txn) => txn.Success.Concat(txn.Failure).All(op => op.Kind == KvTxnOpKind.Get);

    private static (KvCompare? Compare, ProblemResponse? Problem) Compare(TxnCompare? compare, string path, KvOptions settings)
    {
        if (compare is null)
        {
            return Fail(path, "a comparison, not null");
        }
        if (KeyProblem(compare.Key, path + ".key", settings) is { } keyProblem)
        {
            return (null, keyProblem);
        }
        KvCompareOp op;
        switch (compare.Op ?? "=")
        {
            case "=" or "==": op = KvCompareOp.Equal; break;
            case "!=": op = KvCompareOp.NotEqual; break;
            case "<": op = KvCompareOp.Less; break;
            case ">": op = KvCompareOp.Greater; break;
            default: return Fail(path + ".op", $"'{compare.Op}': one of =, !=, <, >");
        }
        var operands = new (string Name, bool Given)[]
        {
            ("value", compare.Value is not null), ("version", compare.Version is not null),
            ("createRevision", compare.CreateRevision is not null), ("exists", compare.Exists is not null),
        };
        var target = compare.Target?.ToLowerInvariant() switch
        {
            "value" => KvCompareTarget.Value,
            "version" => KvCompareTarget.Version,
            "createrevision" or "create_revision" => KvCompareTarget.CreateRevision,
            "exists" => KvCompareTarget.Exists,
            _ => (KvCompareTarget)0,
        };
        if (target == 0)
        {
            return Fail(path + ".target", $"'{compare.Target}': one of value, version, createRevision, exists");
        }
        var expected = operands[(int)target - 1].Name;
        if (operands.FirstOrDefault(o => o.Given && o.Name != expected) is { Name: { } other })
        {
            return Fail($"{path}.{other}", $"a comparison of {expected} takes {expected}, not {other}");
        }
        if (!operands[(int)target - 1].Given)
        {
            return Fail($"{path}.{expected}", $"missing: the {expected} to compare with");
        }
        if (target == KvCompareTarget.Exists && op is not (KvCompareOp.Equal or KvCompareOp.NotEqual))
        {
            return Fail(path + ".op", "exists compares with = or != only");
        }
        if (compare.Value is not null && Encoding.UTF8.GetByteCount(compare.Value) > settings.MaxValueBytes)
        {
            return (null, KvRequests.Problem(413, path + ".value", $"values are at most {settings.MaxValueBytes} bytes"));
        }
        var number = target switch
        {
            KvCompareTarget.Version => compare.Version!.Value,
            KvCompareTarget.CreateRevision => compare.CreateRevision!.Value,
            KvCompareTarget.Exists => compare.Exists!.Value ? 1UL : 0UL,
            _ => 0UL,
        };
        return (new KvCompare(compare.Key!, target, op, compare.Value, number), null);
    }

    private static (KvTxnOp? Op, ProblemResponse? Problem) Operation(TxnOperation? operation, string path, KvOptions settings)
    {
        if (operation is null)
        {
            return FailOp(path, "an operation, not null");
        }
        KvTxnOpKind kind;
        switch (operation.Type?.ToUpperInvariant())
        {
            case "PUT" or "SET": kind = KvTxnOpKind.Put; break;
            case "DELETE": kind = KvTxnOpKind.Delete; break;
            case "GET": kind = KvTxnOpKind.Get; break;
            default: return FailOp(path + ".type", $"'{operation.Type}': one of PUT, DELETE, GET");
        }
        if (KeyProblem(operation.Key, path + ".key", settings) is { } keyProblem)
        {
            return (null, keyProblem);
        }
        if (kind == KvTxnOpKind.Put)
        {
            if (operation.Value is null)
            {
                return FailOp(path + ".value", "missing: PUT needs a value");
            }
            if (Encoding.UTF8.GetByteCount(operation.Value) > settings.MaxValueBytes)
            {
                return (null, KvRequests.Problem(413, path + ".value", $"values are at most {settings.MaxValueBytes} bytes"));
            }
        }
        else if (operation.Value is not null)
        {
            return FailOp(path + ".value", $"{kind.ToString().ToUpperInvariant()} takes no value");
        }
        if (operation.Lease is not (null or 0) && kind != KvTxnOpKind.Put)
        {
            return FailOp(path + ".lease", "only a PUT is written with a lease");
        }
        return (new KvTxnOp(kind, operation.Key!, operation.Value, operation.Lease ?? 0), null);
    }

    private static ProblemResponse? KeyProblem(string? key, string path, KvOptions settings)
    {
        if (string.IsNullOrEmpty(key))
        {
            return KvRequests.Problem(400, path, "missing or empty");
        }
        var bytes = Encoding.UTF8.GetByteCount(key);
        return bytes > settings.MaxKeyBytes ? KvRequests.Problem(400, path, $"{bytes} bytes; keys are at most {settings.MaxKeyBytes} bytes") : null;
    }

    private static (KvTxn?, ProblemResponse?) Invalid(int status, string field, string detail) => (null, KvRequests.Problem(status, field, detail));

    private static (KvCompare?, ProblemResponse?) Fail(string field, string detail) => (null, KvRequests.Problem(400, field, detail));

    private static (KvTxnOp?, ProblemResponse?) FailOp(string field, string detail) => (null, KvRequests.Problem(400, field, detail));
}
