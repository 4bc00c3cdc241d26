using System.Collections;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>One configuration section, RaftKv:{Name}, bound to one component's options type.</summary>
public sealed record SettingsSection(string Name, Type OptionsType)
{
    public string Path => RaftConfiguration.Root + ":" + Name;

    /// <summary>The settings of the section: every public property that configuration can set, with its default.</summary>
    public IEnumerable<(string Name, Type Type, object? Default)> Settings()
    {
        var defaults = Activator.CreateInstance(OptionsType);
        return OptionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true } && IsSimple(p.PropertyType))
            .Select(p => (p.Name, p.PropertyType, p.GetValue(defaults)));
    }

    private static bool IsSimple(Type type) => type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal);
}

/// <summary>
/// Where settings come from, in order: appsettings.json, environment variables RAFTKV_{Section}__{Name} (for example
/// RAFTKV_Node__TickMs=50), then the command line: --{kebab-name} or --{Name} for any setting (--tick-ms 50,
/// --TickMs=50), or --RaftKv:{Section}:{Name}=value. Each section is validated at start; every bad value is one line.
/// </summary>
public static class RaftConfiguration
{
    public const string Root = "RaftKv";

    public const string EnvironmentPrefix = "RAFTKV_";

    /// <summary>
    /// RAFTKV_{Section}__{Name} → RaftKv:{Section}:{Name}. Only names with a double underscore count, so the client's
    /// RAFTKV_ENDPOINTS (and the scripts' RAFTKV_* variables) are not read as settings.
    /// </summary>
    public static IConfigurationBuilder AddRaftKvEnvironment(this IConfigurationBuilder configuration, IDictionary? variables = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry variable in variables ?? Environment.GetEnvironmentVariables())
        {
            var name = (string)variable.Key;
            if (name.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase) && name.Contains("__", StringComparison.Ordinal)
                && !IsAspNetCoreForm(name))
            {
                settings[Root + ":" + name[EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal)] = (string?)variable.Value;
            }
        }
        return configuration.AddInMemoryCollection(settings);
    }

    /// <summary>
    /// RaftKv__Node__TickMs is ASP.NET Core's own form of RaftKv:Node:TickMs (what containers and Kubernetes manifests
    /// write), read by its environment source: not this one's to read as a section "_Node". The earlier
    /// RAFTKV__RaftKv__TickMs still is, and is refused as the section "_RaftKv".
    /// </summary>
    private static bool IsAspNetCoreForm(string name) =>
        name.AsSpan(EnvironmentPrefix.Length).StartsWith("_", StringComparison.Ordinal)
        && !name.AsSpan(EnvironmentPrefix.Length + 1).StartsWith(Root + "__", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Command-line switches: --{Name} and --{kebab-name} for every setting of every section. A name that two sections
    /// share would be ambiguous: that is a programming error, found at start.
    /// </summary>
    public static Dictionary<string, string> SwitchMappings(IEnumerable<SettingsSection> sections)
    {
        ArgumentNullException.ThrowIfNull(sections);
        var mappings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in sections)
        {
            foreach (var (name, _, _) in section.Settings())
            {
                var key = section.Path + ":" + name;
                foreach (var flag in new[] { "--" + name, "--" + Kebab(name) })
                {
                    if (mappings.TryGetValue(flag, out var other) && other != key)
                    {
                        throw new InvalidOperationException($"{flag} would set both {other} and {key}: rename one of the settings");
                    }
                    mappings[flag] = key;
                }
            }
        }
        return mappings;
    }

    /// <summary>The generic host's own switches (test hosts pass them), which the host reads itself.</summary>
    private static readonly HashSet<string> HostSwitches = new(["--environment", "--contentRoot", "--applicationName"], StringComparer.OrdinalIgnoreCase);

    /// <summary>The words of <paramref name="args"/> that name no setting: not a mapped switch, not a full RaftKv:… key.</summary>
    public static IReadOnlyList<string> UnknownSwitches(IReadOnlyList<string> args, IReadOnlyDictionary<string, string> mappings)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(mappings);
        var unknown = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var word = args[i];
            if (!word.StartsWith("--", StringComparison.Ordinal))
            {
                unknown.Add(word); // a value with no switch before it
                continue;
            }
            var equals = word.IndexOf('=', StringComparison.Ordinal);
            var flag = equals < 0 ? word : word[..equals];
            if (!mappings.ContainsKey(flag) && !flag.StartsWith("--" + Root + ":", StringComparison.OrdinalIgnoreCase) && !flag.Equals("--" + Root, StringComparison.OrdinalIgnoreCase) && !HostSwitches.Contains(flag))
            {
                unknown.Add(flag);
            }
            if (equals < 0)
            {
                if (i + 1 == args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    unknown.Add(flag + " (no value)"); // "--data-dir $DIR" with DIR unset must not fall back to ./data
                }
                else
                {
                    i++; // --name value
                }
            }
        }
        return unknown;
    }

    public static string Kebab(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
    }
}

/// <summary>
/// Binds one section to its options, refusing keys the options do not have (a misspelt setting is an error, not a silent
/// default). A value that does not bind is kept as a failure for <see cref="SectionValidator{T}"/> to report with the rest.
/// </summary>
internal sealed class SectionBinder<T>(SettingsSection section, IConfiguration configuration) : IConfigureOptions<T>
    where T : class
{
    public string? Failure { get; private set; }

    public void Configure(T options)
    {
        // Only settable settings: a key that names a derived property (RaftKv:Node:Id) would bind to nothing, silently.
        var settings = section.Settings().Select(s => s.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var unknown = configuration.GetSection(section.Path).GetChildren().Select(c => c.Key).Where(key => !settings.Contains(key)).ToList();
        if (unknown.Count > 0)
        {
            Failure = $"{string.Join(", ", unknown)}: not a setting of this section (see docs/configuration.md)";
            return;
        }
        try
        {
            configuration.GetSection(section.Path).Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException error)
        {
            Failure = error.InnerException is { } inner ? $"{error.Message} {inner.Message}" : error.Message;
        }
    }
}

/// <summary>Validates one section with its own <see cref="IValidatedOptions.Validate"/>; each line names the full key.</summary>
internal sealed class SectionValidator<T>(SettingsSection section, SectionBinder<T> binder, Func<T, T>? prepare = null) : IValidateOptions<T>
    where T : class, IValidatedOptions
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (binder.Failure is { } failure)
        {
            return ValidateOptionsResult.Fail(section.Path + ": " + failure);
        }
        var failures = (prepare is null ? options : prepare(options)).Validate().Select(f => section.Path + ":" + f).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>
/// What sets nothing is refused at start, like a bad value: command-line words that name no setting (a misspelt
/// --tick-mss) and sections under RaftKv that no component reads (a misspelt RAFTKV_Nod__TickMs).
/// </summary>
internal sealed class UnreadSettingsValidator(IReadOnlyList<string> unknownSwitches, IReadOnlyList<SettingsSection> sections, IConfiguration configuration)
    : IValidateOptions<NodeOptions>
{
    public ValidateOptionsResult Validate(string? name, NodeOptions options)
    {
        var known = sections.Select(s => s.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var failures = unknownSwitches.Select(word => $"command line: '{word}' is not a setting (see docs/configuration.md)")
            .Concat(configuration.GetSection(RaftConfiguration.Root).GetChildren()
                .Where(section => !known.Contains(section.Key))
                .Select(section => $"{section.Path}: no such section (the sections are {string.Join(", ", sections.Select(s => s.Name))})"))
            .ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
