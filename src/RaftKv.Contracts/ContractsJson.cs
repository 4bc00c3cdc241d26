using System.Text.Json;
using System.Text.Json.Serialization;

namespace RaftKv.Contracts;

/// <summary>
/// Source-generated JSON for every contract: camelCase names, nulls left out. <see cref="Default"/> writes answers and reads
/// them back; <see cref="Strict"/> reads requests (any case of the same names, no unknown members, numbers as numbers).
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(CommandRequest))]
[JsonSerializable(typeof(KvResponse))]
[JsonSerializable(typeof(KvListResponse))]
[JsonSerializable(typeof(TxnRequest))]
[JsonSerializable(typeof(TxnResponse))]
[JsonSerializable(typeof(WatchEventData))]
[JsonSerializable(typeof(LeaseGrantRequest))]
[JsonSerializable(typeof(LeaseResponse))]
[JsonSerializable(typeof(LeaseInfoResponse))]
[JsonSerializable(typeof(ProblemResponse))]
[JsonSerializable(typeof(StatusResponse))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(MembersResponse))]
[JsonSerializable(typeof(AddMemberRequest))]
[JsonSerializable(typeof(TransferLeaderRequest))]
[JsonSerializable(typeof(LeaderResponse))]
public sealed partial class ContractsJson : JsonSerializerContext
{
    public static ContractsJson Strict { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    });
}
